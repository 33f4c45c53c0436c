// The distributed layer's logic without MPI (size-1 world).

import Foundation
import SpadeCore
@testable import SpadeDist
import XCTest

final class SingleProcessTests: XCTestCase {
    func testSingleProcessCollectivesAreIdentity() {
        let c = SingleProcessCommunicator()
        XCTAssertEqual([c.rank, c.size, c.localRank, c.localSize], [0, 1, 0, 1])
        var f: [Float] = [1.5, -2]
        f.withUnsafeMutableBufferPointer { c.allReduceSum($0) }
        XCTAssertEqual(f, [1.5, -2])
        var d: [Double] = [0.1, 0.2]
        d.withUnsafeMutableBufferPointer { c.deterministicAllReduceSum($0) }
        XCTAssertEqual(d, [0.1, 0.2])
        XCTAssertEqual(c.allReduceMax([Int64(3), -4]), [3, -4])
        XCTAssertEqual(c.allGatherStrings("a"), ["a"])
        XCTAssertTrue(c.anyRank(true))
        XCTAssertFalse(c.anyRank(false))
        XCTAssertTrue(f.withUnsafeMutableBufferPointer { c.startAllReduceSum($0).test() })
    }

    func testGradientAllReducerSingleRankKeepsTheSumsAndChecksFinite() {
        let c = SingleProcessCommunicator()
        var store: [Float] = (0..<100).map { Float($0) * 0.25 }
        let before = store
        let stats: GradientReductionStats = store.withUnsafeMutableBufferPointer { buf in
            let r = GradientAllReducer(communicator: c, base: buf.baseAddress!,
                                       segments: [("b", 60, 40), ("a", 0, 60)], bucketBytes: 64)
            XCTAssertEqual(r.bucketCount, 2)
            XCTAssertEqual(r.stagedBucketCount, 0)
            r.beginStep(); r.markReady("b"); r.poll(); r.markReady(1)
            return r.finish()
        }
        XCTAssertEqual(store, before)
        XCTAssertTrue(stats.allFinite)
        XCTAssertEqual(stats.bytes, 400)
        XCTAssertEqual(stats.bucketsStartedBeforeFinish, 2)
        store[7] = .nan
        let finite = store.withUnsafeMutableBufferPointer { buf in
            let r = GradientAllReducer(communicator: c, base: buf.baseAddress!, segments: [("all", 0, 100)])
            r.beginStep()
            return r.finish().allFinite  // unmarked gradients are taken as final
        }
        XCTAssertFalse(finite)
    }

    /// The finiteness check on the sums: a NaN or Inf anywhere (first, middle, unrolled tail,
    /// last element, in either bucket) is reported; subnormals and huge finite values are not.
    func testNonFiniteSumsAreFoundAnywhere() {
        let c = SingleProcessCommunicator()
        var rng = SplitMix64(seed: 5)
        let values: [Float] = (0..<1003).map { i in
            i % 97 == 0 ? Float(bitPattern: UInt32.random(in: 1...0x7fffff, using: &rng))   // subnormals
                : i == 3 ? .greatestFiniteMagnitude : Float.random(in: -1e3...1e3, using: &rng)
        }
        func allFinite(_ x: [Float]) -> Bool {
            var x = x
            return x.withUnsafeMutableBufferPointer { buf in
                let r = GradientAllReducer(communicator: c, base: buf.baseAddress!,
                                           segments: [("tail", 600, 403), ("head", 0, 600)], bucketBytes: 1024)
                r.beginStep()
                r.markReady("tail")
                r.poll()   // the first bucket is checked here, the second in finish()
                return r.finish().allFinite
            }
        }
        XCTAssertTrue(allFinite(values))
        for (position, bad) in [(0, Float.nan), (500, Float.infinity), (1002, -Float.infinity), (1001, Float.nan), (601, .nan)] {
            var y = values
            y[position] = bad
            XCTAssertFalse(allFinite(y), "\(bad) at \(position) not found")
        }
    }

    /// Node-shared reduction: every element of every bucket belongs to exactly one rank's shard,
    /// for any world size, with shard boundaries on 16-float multiples inside the bucket.
    func testSharedMemoryShardsTileEveryBucket() {
        final class LocalMemory: NodeSharedMemory {
            func segment(of rank: Int) -> UnsafeMutableRawPointer { preconditionFailure("not used") }
            func synchronize() {}
        }
        let store = UnsafeMutablePointer<Float>.allocate(capacity: 5000)
        let flags = UnsafeMutablePointer<Int64>.allocate(capacity: 64)
        defer { store.deallocate(); flags.deallocate() }
        let segments = [("c", 1300, 3700), ("b", 1, 1299), ("a", 0, 1)]
        for ranks in 1...5 {
            let r = SharedMemoryGradientReducer(rank: 0, memory: LocalMemory(), gradients: Array(repeating: store, count: ranks),
                                                flags: Array(repeating: flags, count: ranks), segments: segments,
                                                bucketBytes: 4000, stillWaiting: { _, _ in })
            XCTAssertEqual(r.bucketCount, 3)   // [c] (14800 B), [b] (5196 B), [a]
            var owner = [Int](repeating: -1, count: 5000)
            for b in 0..<r.bucketCount {
                for q in 0..<ranks {
                    let s = r.shard(b, of: q)
                    for i in s { XCTAssertEqual(owner[i], -1, "element \(i) in two shards"); owner[i] = q }
                }
            }
            XCTAssertFalse(owner.contains(-1), "\(ranks) ranks: an element in no shard")
        }
    }

    func testBucketingFollowsBackwardOrderAndDetectsContiguity() {
        let base = UnsafeMutablePointer<Float>.allocate(capacity: 1000)
        defer { base.deallocate() }
        let c = SingleProcessCommunicator()
        // Forward layout a[0,100) b[100,300) c[300,1000); backward order c, b, a.
        let r = GradientAllReducer(communicator: c, base: base,
                                   segments: [("c", 300, 700), ("b", 100, 200), ("a", 0, 100)],
                                   bucketBytes: 1000)
        XCTAssertEqual(r.bucketCount, 2)  // [c] (2800 B >= 1000), [b, a]
        XCTAssertEqual(r.stagedBucketCount, 0)
        // A bucket whose gradients are not adjacent is staged.
        let s = GradientAllReducer(communicator: c, base: base,
                                   segments: [("c", 300, 700), ("a", 0, 100), ("b", 100, 200)],
                                   bucketBytes: 1 << 20)
        XCTAssertEqual(s.bucketCount, 1)
        XCTAssertEqual(s.stagedBucketCount, 0)  // c, a, b still tile [0, 1000)
        let gap = GradientAllReducer(communicator: c, base: base,
                                     segments: [("c", 300, 700), ("a", 0, 100)], bucketBytes: 1 << 20)
        XCTAssertEqual(gap.stagedBucketCount, 1)
        XCTAssertTrue(gap.layoutDescription.contains("2 gradients"), gap.layoutDescription)
    }

    func testBLASThreadPolicy() {
        XCTAssertEqual(blasThreadsPerRank(localSize: 1, cores: 2, override: nil), 2)
        XCTAssertEqual(blasThreadsPerRank(localSize: 2, cores: 2, override: nil), 1)
        XCTAssertEqual(blasThreadsPerRank(localSize: 4, cores: 2, override: nil), 1)
        XCTAssertEqual(blasThreadsPerRank(localSize: 3, cores: 16, override: nil), 5)
        XCTAssertEqual(blasThreadsPerRank(localSize: 2, cores: 16, override: 3), 3)
        XCTAssertEqual(blasThreadsPerRank(localSize: 2, cores: 16, override: 0), 8)
        let l = rankLayout(SingleProcessCommunicator(), cpus: CPUCounts(online: 8, usable: 1))
        XCTAssertEqual(l.blasThreads, 8)
        XCTAssertTrue(l.description.hasPrefix("world 1 ranks, 1 per node, 8 BLAS threads per rank (8 cores per node; each rank bound to >= 1 cores)"), l.description)
        XCTAssertTrue(l.description.contains("warning: a rank may run on only 1 core(s)"), l.description)
        let cpus = detectCPUs()
        XCTAssertGreaterThanOrEqual(cpus.online, cpus.usable)
        XCTAssertGreaterThan(cpus.usable, 0)
    }

    func testFirstDifferenceMessage() {
        XCTAssertNil(describeFirstDifference(["a\nb", "a\nb"], what: "config"))
        XCTAssertEqual(describeFirstDifference(["a\nb", "a\nb", "a\nc"], what: "config"),
                       "config differs between rank 0 and rank 2 at line 2: rank 0 has 'b', rank 2 has 'c'")
        XCTAssertEqual(describeFirstDifference(["a", "a\nextra"], what: "shapes"),
                       "shapes differs between rank 0 and rank 1 at line 2: rank 0 has <end>, rank 1 has 'extra'")
    }

    func testContentHashSeesOneBitAndLength() {
        var a = [Float](repeating: 1, count: 1001)
        let h = a.withUnsafeBytes { contentHash($0) }
        a[500] = a[500].nextUp
        XCTAssertNotEqual(h, a.withUnsafeBytes { contentHash($0) })
        a[500] = 1
        XCTAssertEqual(h, a.withUnsafeBytes { contentHash($0) })
        XCTAssertNotEqual(h, a.dropLast().withUnsafeBytes { contentHash($0) })
    }

    func testStatisticsReducerCountsCalls() {
        let r = ReplicaStatisticsReducer(SingleProcessCommunicator())
        var v: [Double] = [1, 2]
        for call in 1...2 {
            v.withUnsafeMutableBufferPointer { r.startSum($0).wait() }
            XCTAssertEqual(v, [1, 2])
            XCTAssertEqual(r.calls, call)
        }
    }

    func testDistributedErrorExitCodes() {
        XCTAssertEqual(DistributedError.inconsistent("x").exitCode, 2)
        XCTAssertTrue(DistributedError.inconsistent("x").sameOnAllRanks)
        XCTAssertEqual(DistributedError.replicasDiverged("x").exitCode, 1)
        XCTAssertFalse(DistributedError.mpi("x").sameOnAllRanks)
    }
}
