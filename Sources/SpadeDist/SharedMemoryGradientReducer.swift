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
// it) and starts the shard's reduce-scatter across nodes (CrossNodeExchange.swift: overlapped
// with the rest of backward, started in bucket order so every node issues them alike). Once
// its node's piece has arrived it sums the nodes' pieces, checks the result and raises its
// flag. The optimizer then reads the world's sums of its own pieces from its own store
// (`summands` is that store alone) and updates only those; `startGather` then brings the
// other nodes' updated pieces back (ZeRO-1 across nodes: each node holds one copy of the
// parameters, each rank of the job updates 1/world of them and of the moments; a checkpoint
// gathers the moments the same way).
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
        var crossNodeStarted = false   // its reduce-scatter across nodes
    }

    public let rank: Int
    public let worldSize: Int
    public let bucketBytes: Int
    public var checkFinite = true
    /// Every rank's gradient store: the sums are these added in rank order. Across nodes: this
    /// rank's own store, which holds the world's sums of its shards.
    public var summands: [UnsafeMutablePointer<Float>]? { crossNode == nil ? gradientStores : [gradientStores[rank]] }
    /// This rank's part of the traffic between nodes (nil: one node).
    private let crossNode: CrossNodeExchange?
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
                segments: [(name: String, offset: Int, count: Int)], bucketBytes: Int = defaultGradientBucketBytes,
                crossNode: Communicator? = nil, wire: GradientWireType = .float32,
                stillWaiting: @escaping (_ what: String, _ since: Double) -> Void) {
        precondition(gradients.count == flags.count && rank < gradients.count && bucketBytes > 0)
        self.rank = rank
        self.worldSize = gradients.count
        self.memory = memory
        self.gradientStores = gradients
        self.flagStores = flags
        self.bucketBytes = bucketBytes
        self.stillWaiting = stillWaiting
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
        // Its own duplicate (collective): the other network's reducer starts its collectives
        // in another interleaving on each node.
        if let crossNode, crossNode.size > 1 {
            let shards = buckets.map { [worldSize] in Self.shard(of: $0, rank: rank, worldSize: worldSize) }
            self.crossNode = CrossNodeExchange(communicator: crossNode.duplicate(), shards: shards, wire: wire)
        } else {
            self.crossNode = nil
        }
    }

    public var bucketCount: Int { buckets.count }

    /// This rank's shards (across nodes: its pieces of them) of all buckets, merged where
    /// adjacent: the part of the optimizer update that is this rank's when the replicas share
    /// parameters and moments.
    public var ownedRanges: [Range<Int>] {
        var ranges: [Range<Int>] = []
        for b in buckets.indices {
            let s = owned(b)
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
        let across = crossNode.map { ", then across \($0.comm.size) nodes by reduce-scatter (\($0.wire.rawValue)) and parameter all-gather" } ?? ""
        return "\(counts.count) gradients, \(total * 4 / 1024) KiB in \(buckets.count) buckets of ~\(bucketBytes / 1024) KiB, in node-shared memory" + across
    }

    /// This rank's shard of a bucket: 16-float-aligned pieces, the last ranks' possibly empty.
    func shard(_ b: Int, of r: Int) -> Range<Int> { Self.shard(of: buckets[b], rank: r, worldSize: worldSize) }

    private static func shard(of bucket: Bucket, rank r: Int, worldSize: Int) -> Range<Int> {
        let n = bucket.elements
        let chunk = ((n + worldSize - 1) / worldSize + 15) / 16 * 16
        let lo = min(r * chunk, n), hi = min(lo + chunk, n)
        return (bucket.start + lo)..<(bucket.start + hi)
    }

    /// What this rank sums, checks and updates of bucket b: its shard, or across nodes its
    /// node's piece of it.
    private func owned(_ b: Int) -> Range<Int> { crossNode?.ownedPiece(b) ?? shard(b, of: rank) }

    /// Collective over the nodes (every rank, after the optimizer updated its pieces of
    /// `values`): starts bringing every node's pieces to every node. Empty on one node.
    public func startGather(_ values: UnsafeMutablePointer<Float>) -> [PendingReduction] {
        crossNode?.startGather(values) ?? []
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
            buckets[b].crossNodeStarted = false
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
                guard crossNode!.test(b) else { break }   // MPI_Test moves them all
                checkShard(b)
            }
        }
        stats.pollSeconds += monotonicSeconds() - t0
    }

    private func everyoneReady(_ b: Int) -> Bool {
        (0..<worldSize).allSatisfy { cmpi_flag_load(readyFlag($0, b)) == step }
    }

    /// Across nodes: stores the node's sum of this rank's shard of bucket b in its own store and
    /// starts its reduce-scatter with the other nodes.
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
        crossNode!.startSum(b, store: gradientStores[rank])
        buckets[b].crossNodeStarted = true
        nextCrossNode += 1
        stats.postProcessSeconds += monotonicSeconds() - t0
    }

    /// Checks what this rank owns of bucket b for NaN/Inf: the rank-order sums over the node, or
    /// (across nodes, once the other nodes' pieces have arrived) the world's sums, which it
    /// first forms in its own store.
    private func checkShard(_ b: Int) {
        if let crossNode {
            precondition(buckets[b].crossNodeStarted, "bucket \(b) checked before its reduction across nodes started")
            crossNode.finishSum(b, store: gradientStores[rank])
        }
        let t0 = monotonicSeconds()
        let range = owned(b)
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
            // Across nodes, "ready" is "its reduce-scatter started": another rank's flag may rise
            // between the two looks, and a shard must never be checked before its reduction.
            if crossNode != nil {
                while nextCrossNode < buckets.count && everyoneReady(nextCrossNode) { startCrossNode(nextCrossNode) }
            }
            if crossNode == nil ? everyoneReady(b) : nextCrossNode > b {
                checkShard(b)   // across nodes: waits for its pieces (watched by the stall watchdog)
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
