// Gradient sums through node-shared memory: the whole world on one node, or each node's part
// of a multi-node world (hierarchical: node-shared sums, then MPI across nodes).
//
// Every rank's backward writes its gradients straight into its own segment of an MPI
// shared-memory window. Buckets are planned as in GradientAllReducer; each bucket is cut
// into one shard per rank. When a rank finishes a bucket it raises its "ready" flag for
// the step; the owner of a shard, once every rank's flag is up, checks the rank-order sums
// of its shard for NaN/Inf and raises its "checked" flag (the sign carries the verdict).
// `finish()` completes this rank's shards and waits for everyone else's. The sums are
// never stored: the optimizer adds the ranks' gradients in rank order as it reads them
// (`summands`), the same sums on every rank, and with a sharded optimizer each rank reads
// only its own shard. No MPI call and no copy: an MPI all-reduce moves each gradient
// through the kernel (process_vm_readv) twice and adds it in a separate pass.
//
// Several nodes (`crossNode`, the ranks with this local rank on every node): the owner of a
// shard stores its node's rank-order sum in its own store (nobody else reads that range of
// it), all-reduces that range with its counterparts on the other nodes (overlapped with the
// rest of backward, started in bucket order so every node issues them alike), checks the
// result and raises its flag. The optimizer then reads the world's sums of its own shards
// from its own store (`summands` is that store alone). Each node keeps one copy of the
// parameters and moments (ZeRO-1 within the node, replicated across nodes); every node
// computes the same updates from the same bits, so the copies stay identical.
//
// The flags hold step numbers, so they never need resetting, and they order everything:
// - an owner reads rank q's bucket only after q's ready flag for this step (q wrote it);
// - a rank's finish() returns only after every shard was checked (nobody reads for the
//   check any more); the optimizer's reads end before the barrier the trainer passes
//   after it, and only then does any rank start the next backward.

import CKernels
import CMPI
import Foundation

public final class SharedMemoryGradientReducer: GradientReducer {
    struct Bucket {
        let start: Int, elements: Int   // float range in the gradient store
        var published = false
        var checked = false          // this rank's shard
        var crossNode: PendingReduction?   // its all-reduce across nodes, in flight
    }

    public let rank: Int
    public let worldSize: Int
    public let bucketBytes: Int
    public var checkFinite = true
    /// Every rank's gradient store: the sums are these added in rank order. Across nodes: this
    /// rank's own store, which holds the world's sums of its shards.
    public var summands: [UnsafeMutablePointer<Float>]? { crossNode == nil ? gradientStores : [gradientStores[rank]] }
    /// The ranks with this local rank on every node (nil: one node).
    private let crossNode: Communicator?
    /// Next bucket whose shard goes across nodes (in bucket order on every node).
    private var nextCrossNode = 0

    private let memory: NodeSharedMemory
    private let gradientStores: [UnsafeMutablePointer<Float>]   // every rank's, same layout
    private let flagStores: [UnsafeMutablePointer<Int64>]       // every rank's: ready[b], then checked[b]
    private let stillWaiting: (_ what: String, _ since: Double) -> Void
    private var buckets: [Bucket] = []
    private var readiness: BucketReadiness
    private let counts: [Int]
    private var step: Int64 = 0
    private var inStep = false
    private var stats = GradientReductionStats()
    private var sources: [UnsafePointer<Float>?]

    /// Flags (Int64) each rank needs for gradients of these sizes.
    public static func flagCount(gradientCounts: [Int], bucketBytes: Int) -> Int {
        2 * planGradientBuckets(counts: gradientCounts, bucketBytes: bucketBytes).count
    }

    /// `segments`: (name, offset, count) in the order backward finalises them, tiling one
    /// gradient store; `gradients[q]` is rank q's store, `flags[q]` its `flagCount` flags
    /// (zero-initialised). All ranks construct their reducers with the same segments in the
    /// same order.
    public init(rank: Int, memory: NodeSharedMemory, gradients: [UnsafeMutablePointer<Float>],
                flags: [UnsafeMutablePointer<Int64>],
                segments: [(name: String, offset: Int, count: Int)], bucketBytes: Int = 4 << 20,
                crossNode: Communicator? = nil,
                stillWaiting: @escaping (_ what: String, _ since: Double) -> Void) {
        precondition(gradients.count == flags.count && rank < gradients.count && bucketBytes > 0)
        self.rank = rank
        self.worldSize = gradients.count
        self.memory = memory
        self.gradientStores = gradients
        self.flagStores = flags
        self.bucketBytes = bucketBytes
        self.stillWaiting = stillWaiting
        // Its own duplicate (collective): the other network's reducer starts its collectives
        // in another interleaving on each node.
        self.crossNode = crossNode.flatMap { $0.size > 1 ? $0.duplicate() : nil }
        counts = segments.map(\.count)
        let plan = planGradientBuckets(counts: counts, bucketBytes: bucketBytes)
        readiness = BucketReadiness(buckets: plan, gradientCount: segments.count)
        for range in plan {
            let parts = segments[range].filter { $0.count > 0 }.sorted { $0.offset < $1.offset }
            let start = parts.first?.offset ?? 0
            var end = start
            for p in parts {
                precondition(p.offset == end, "gradient \(p.name): a bucket's gradients must tile one range")
                end += p.count
            }
            buckets.append(Bucket(start: start, elements: end - start))
        }
        sources = Array(repeating: nil, count: gradients.count)
    }

    public var bucketCount: Int { buckets.count }

    /// This rank's shards of all buckets, merged where adjacent: the part of the optimizer
    /// update that is this rank's when the replicas share parameters and moments.
    public var ownedRanges: [Range<Int>] {
        var ranges: [Range<Int>] = []
        for b in buckets.indices {
            let s = shard(b, of: rank)
            if s.isEmpty { continue }
            if let last = ranges.last, last.upperBound == s.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound..<s.upperBound
            } else {
                ranges.append(s)
            }
        }
        return ranges
    }

    public var layoutDescription: String {
        let total = buckets.reduce(0) { $0 + $1.elements }
        let across = crossNode.map { ", then across \($0.size) nodes by MPI all-reduce of each shard" } ?? ""
        return "\(counts.count) gradients, \(total * 4 / 1024) KiB in \(buckets.count) buckets of ~\(bucketBytes / 1024) KiB, in node-shared memory" + across
    }

    /// This rank's shard of a bucket: 16-float-aligned pieces, the last ranks' possibly empty.
    func shard(_ b: Int, of r: Int) -> Range<Int> {
        let n = buckets[b].elements
        let chunk = ((n + worldSize - 1) / worldSize + 15) / 16 * 16
        let lo = min(r * chunk, n), hi = min(lo + chunk, n)
        return (buckets[b].start + lo)..<(buckets[b].start + hi)
    }

    private func readyFlag(_ r: Int, _ b: Int) -> UnsafeMutablePointer<Int64> { flagStores[r] + b }
    private func checkedFlag(_ r: Int, _ b: Int) -> UnsafeMutablePointer<Int64> { flagStores[r] + buckets.count + b }

    public func beginStep() {
        precondition(!inStep, "beginStep() called twice without finish()")
        step += 1
        readiness.begin()
        for b in buckets.indices {
            buckets[b].published = false
            buckets[b].checked = false
        }
        nextCrossNode = 0
        stats = GradientReductionStats()
        stats.buckets = buckets.count
        inStep = true
    }

    public func markReady(_ index: Int) {
        precondition(inStep, "markReady outside beginStep()/finish()")
        if let b = readiness.mark(index, name: "\(index)") { publish(b) }
    }

    private func publish(_ b: Int) {
        buckets[b].published = true
        cmpi_flag_store(readyFlag(rank, b), step)
    }

    public func poll() {
        guard inStep else { return }
        let t0 = monotonicSeconds()
        if crossNode == nil {
            for b in buckets.indices where buckets[b].published && !buckets[b].checked && everyoneReady(b) {
                checkShard(b)
            }
        } else {
            while nextCrossNode < buckets.count && buckets[nextCrossNode].published && everyoneReady(nextCrossNode) {
                startCrossNode(nextCrossNode)
            }
            for b in 0..<nextCrossNode where !buckets[b].checked {
                guard buckets[b].crossNode?.test() ?? true else { break }   // MPI_Test moves them all
                checkShard(b)
            }
        }
        stats.pollSeconds += monotonicSeconds() - t0
    }

    private func everyoneReady(_ b: Int) -> Bool {
        (0..<worldSize).allSatisfy { cmpi_flag_load(readyFlag($0, b)) == step }
    }

    /// Across nodes: stores the node's sum of this rank's shard of bucket b in its own store and
    /// starts its all-reduce with the other nodes.
    private func startCrossNode(_ b: Int) {
        precondition(b == nextCrossNode)
        let t0 = monotonicSeconds()
        let range = shard(b, of: rank)
        if !range.isEmpty {
            for q in 0..<worldSize { sources[q] = UnsafePointer(gradientStores[q] + range.lowerBound) }
            sources.withUnsafeBufferPointer {
                spade_sum_into(gradientStores[rank] + range.lowerBound, $0.baseAddress!, worldSize, range.count)
            }
        }
        buckets[b].crossNode = crossNode!.startAllReduceSum(
            UnsafeMutableBufferPointer(start: gradientStores[rank] + range.lowerBound, count: range.count))
        nextCrossNode += 1
        stats.postProcessSeconds += monotonicSeconds() - t0
    }

    /// Checks this rank's shard of bucket b for NaN/Inf: the rank-order sums over the node, or
    /// (across nodes, once the all-reduce has completed) the world's sums in its own store.
    private func checkShard(_ b: Int) {
        if crossNode != nil {
            guard let pending = buckets[b].crossNode else { preconditionFailure("bucket \(b) checked before its all-reduce across nodes") }
            pending.wait()
            buckets[b].crossNode = nil
        }
        let t0 = monotonicSeconds()
        let range = shard(b, of: rank)
        var finite = true
        if checkFinite && !range.isEmpty && crossNode != nil {
            finite = spade_all_finite(gradientStores[rank] + range.lowerBound, range.count) != 0
        } else if checkFinite && !range.isEmpty {
            for q in 0..<worldSize { sources[q] = UnsafePointer(gradientStores[q] + range.lowerBound) }
            finite = sources.withUnsafeBufferPointer {
                spade_sum_all_finite($0.baseAddress!, worldSize, range.count) != 0
            }
        }
        buckets[b].checked = true
        // The sign carries the verdict to the other ranks: -step = some sum is NaN/Inf.
        cmpi_flag_store(checkedFlag(rank, b), finite ? step : -step)
        stats.postProcessSeconds += monotonicSeconds() - t0
    }

    @discardableResult
    public func finish() -> GradientReductionStats {
        precondition(inStep, "finish() without beginStep()")
        stats.bucketsStartedBeforeFinish = buckets.filter(\.published).count
        stats.bucketsCompletedBeforeFinish = buckets.filter(\.checked).count
        for b in buckets.indices where !buckets[b].published { publish(b) }
        let t0 = monotonicSeconds(), checkingBefore = stats.postProcessSeconds
        var spins = 0
        func keepWaiting(_ what: String) {
            spins += 1
            if spins % 64 == 0 { cmpi_yield() }   // oversubscribed ranks share cores
            stillWaiting(what, t0)   // the stall watchdog (Communicator.stillWaiting)
        }
        // This rank's shards, as the other ranks' buckets arrive.
        while let b = buckets.indices.first(where: { !buckets[$0].checked }) {
            // Across nodes, "ready" is "its all-reduce started": another rank's flag may rise
            // between the two looks, and a shard must never be checked before its reduction.
            if crossNode != nil {
                while nextCrossNode < buckets.count && everyoneReady(nextCrossNode) { startCrossNode(nextCrossNode) }
            }
            if crossNode == nil ? everyoneReady(b) : nextCrossNode > b {
                checkShard(b)   // across nodes: waits for its all-reduce (watched by the stall watchdog)
            } else {
                keepWaiting("the gradients of bucket \(b) from every rank on this node")
            }
        }
        // Everyone else's shards.
        var allFinite = true
        for b in buckets.indices {
            for q in 0..<worldSize {
                while true {
                    let flag = cmpi_flag_load(checkedFlag(q, b))
                    if flag == step || flag == -step { allFinite = allFinite && flag == step; break }
                    keepWaiting("rank \(q)'s check of bucket \(b)")
                }
            }
            stats.bytes += buckets[b].elements * MemoryLayout<Float>.size
        }
        memory.synchronize()
        stats.commWaitSeconds = monotonicSeconds() - t0 - (stats.postProcessSeconds - checkingBefore)
        stats.allFinite = allFinite
        inStep = false
        return stats
    }
}
