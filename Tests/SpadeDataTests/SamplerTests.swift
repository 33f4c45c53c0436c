import Foundation
import XCTest
@testable import SpadeData

final class SamplerTests: XCTestCase {
    func testPermutationIsDeterministicAndDependsOnEpoch() {
        let a = ShardedSampler.permutation(count: 50, seed: 7, epoch: 0, serial: false)
        XCTAssertEqual(a, ShardedSampler.permutation(count: 50, seed: 7, epoch: 0, serial: false))
        XCTAssertEqual(a.sorted(), Array(0..<50))
        XCTAssertNotEqual(a, ShardedSampler.permutation(count: 50, seed: 7, epoch: 1, serial: false))
        XCTAssertNotEqual(a, ShardedSampler.permutation(count: 50, seed: 8, epoch: 0, serial: false))
        XCTAssertEqual(ShardedSampler.permutation(count: 5, seed: 7, epoch: 3, serial: true), [0, 1, 2, 3, 4])
    }

    /// Every sample exactly once per epoch across ranks; the global batches
    /// are the same for any world size.
    func testShardingForOneToFourRanks() {
        let count = 103, perRank = 2
        var reference: [[Int]]? = nil  // global batches of N = 1 with the same global batch size
        for n in 1...4 {
            let global = 12  // divisible by 1...4: per-rank 12, 6, 4, 3
            var samplers = (0..<n).map { ShardedSampler(count: count, globalBatch: global, rank: $0, worldSize: n, seed: 42, serial: false) }
            XCTAssertEqual(samplers[0].stepsPerEpoch, count / global)
            for epoch in 0..<3 {
                var seen: [Int] = []
                var globals: [[Int]] = []
                for _ in 0..<(count / global) {
                    var g: [Int] = []
                    for r in 0..<n {
                        let step = samplers[r].next()
                        XCTAssertEqual(step.epoch, epoch)
                        XCTAssertEqual(step.indices.count, global / n)
                        g += step.indices
                    }
                    globals.append(g)
                    seen += g
                }
                XCTAssertEqual(Set(seen).count, seen.count, "duplicates for N=\(n)")
                XCTAssertEqual(seen.count, (count / global) * global)  // drop_last: 103 -> 96
                if epoch == 0 {
                    if let ref = reference { XCTAssertEqual(globals, ref, "global batches differ for N=\(n)") } else { reference = globals }
                }
            }
        }
        _ = perRank
    }

    func testRankSliceOfGlobalBatch() {
        var s0 = ShardedSampler(count: 20, globalBatch: 6, rank: 0, worldSize: 3, seed: 1, serial: false)
        var s2 = ShardedSampler(count: 20, globalBatch: 6, rank: 2, worldSize: 3, seed: 1, serial: false)
        let g = s0.globalBatchIndices(at: SamplerPosition())
        XCTAssertEqual(s0.next().indices, Array(g[0..<2]))
        XCTAssertEqual(s2.next().indices, Array(g[4..<6]))
    }

    func testResumeContinuesWithTheNextBatch() {
        var full = ShardedSampler(count: 30, globalBatch: 4, rank: 1, worldSize: 2, seed: 9, serial: false)
        var steps: [SamplerStep] = []
        for _ in 0..<20 { steps.append(full.next()) }  // crosses two epoch boundaries (7 steps/epoch)
        for k in [0, 3, 6, 7, 13] {
            let saved = steps[k].positionAfter
            // Serialize as a checkpoint would (JSON and the metadata string).
            let json = try! JSONEncoder().encode(saved)
            let decoded = try! JSONDecoder().decode(SamplerPosition.self, from: json)
            XCTAssertEqual(SamplerPosition(serialized: saved.serialized), saved)
            var resumed = ShardedSampler(count: 30, globalBatch: 4, rank: 1, worldSize: 2, seed: 9, serial: false, start: decoded)
            for j in (k + 1)..<20 { XCTAssertEqual(resumed.next(), steps[j], "resume after step \(k)") }
        }
        XCTAssertEqual(steps[6].positionAfter, SamplerPosition(epoch: 0, index: 28))
        XCTAssertEqual(steps[7].epoch, 1)
        XCTAssertEqual(steps[7].globalOffset, 0)
    }

    func testAugmentationDoesNotDependOnRanks() throws {
        // The same sample in the same epoch gets the same crop/flip whoever loads it.
        var o = DatasetOptions()
        o.datasetMode = "synthetic"
        o.syntheticCount = 8
        o.syntheticSize = 40
        o.cropSize = 32
        o.loadSize = 36
        o.preprocessMode = "resize_and_crop"
        o.noFlip = false
        let ds = try Dataset(options: o)
        let one = try ds.makeBatch(indices: [5, 2], epoch: 3)
        let a = try ds.makeBatch(indices: [5], epoch: 3), b = try ds.makeBatch(indices: [2], epoch: 3)
        XCTAssertEqual(one.image, a.image + b.image)
        XCTAssertEqual(one.semantics, a.semantics + b.semantics)
        let others = try (4..<9).map { try ds.makeBatch(indices: [5], epoch: $0).image }
        XCTAssertTrue(others.contains { $0 != a.image })  // other epochs, other crops/flips
    }
}
