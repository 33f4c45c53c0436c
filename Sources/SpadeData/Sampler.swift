import Foundation
import SpadeCore

/// Where a run is in its data: `index` global samples of epoch `epoch` have
/// been consumed (a multiple of the global batch). Stored in checkpoints.
public struct SamplerPosition: Codable, Equatable, Sendable, CustomStringConvertible {
    public var epoch: Int
    public var index: Int

    public init(epoch: Int = 0, index: Int = 0) {
        self.epoch = epoch
        self.index = index
    }

    public var description: String { "epoch \(epoch) index \(index)" }

    /// `"<epoch>:<index>"`, the form stored in checkpoint metadata.
    public var serialized: String { "\(epoch):\(index)" }

    public init?(serialized s: String) {
        let parts = s.split(separator: ":")
        guard parts.count == 2, let e = Int(parts[0]), let i = Int(parts[1]), e >= 0, i >= 0 else { return nil }
        self.init(epoch: e, index: i)
    }
}

/// One step of one rank: the dataset indices of its part of a global batch.
public struct SamplerStep: Sendable, Equatable {
    public var epoch: Int
    /// Position of the first sample of the global batch within the epoch.
    public var globalOffset: Int
    /// This rank's dataset indices (length globalBatch / worldSize).
    public var indices: [Int]
    /// The position after this step (what a checkpoint taken after it stores).
    public var positionAfter: SamplerPosition
}

/// Deterministic data sharding. Each epoch has one global order, a
/// permutation of 0..<count drawn from (seed, epoch) (or file order with
/// `serial`), independent of the world size. The epoch is cut into
/// count / globalBatch global batches (a partial last batch is dropped, like
/// drop_last); rank r takes elements [r*b, (r+1)*b) of each, b =
/// globalBatch / worldSize. So every sample is seen at most once per epoch,
/// exactly once across ranks, and N ranks see the same global batches as 1.
public struct ShardedSampler: Sendable {
    public let count: Int
    public let globalBatch: Int
    public let rank: Int
    public let worldSize: Int
    public let seed: UInt64
    public let serial: Bool
    /// The next step starts here.
    public private(set) var position: SamplerPosition

    private var cachedEpoch: Int = -1
    private var cachedOrder: [Int] = []

    public init(count: Int, globalBatch: Int, rank: Int, worldSize: Int, seed: UInt64, serial: Bool,
                start: SamplerPosition = SamplerPosition()) {
        precondition(count > 0 && globalBatch > 0 && worldSize > 0, "sampler: positive sizes required")
        precondition(globalBatch % worldSize == 0, "sampler: global batch \(globalBatch) not divisible by world size \(worldSize)")
        precondition(rank >= 0 && rank < worldSize, "sampler: rank \(rank) outside 0..<\(worldSize)")
        precondition(globalBatch <= count, "sampler: \(count) samples cannot fill a global batch of \(globalBatch)")
        self.count = count
        self.globalBatch = globalBatch
        self.rank = rank
        self.worldSize = worldSize
        self.seed = seed
        self.serial = serial
        self.position = start
    }

    /// Per-rank batch size.
    public var localBatch: Int { globalBatch / worldSize }
    /// Global batches per epoch (the partial last one is dropped).
    public var stepsPerEpoch: Int { count / globalBatch }

    /// The epoch's global order of dataset indices.
    public static func permutation(count: Int, seed: UInt64, epoch: Int, serial: Bool) -> [Int] {
        var order = Array(0..<count)
        if serial { return order }
        var rng = SplitMix64(keys: seed, 0x5045_524D, UInt64(epoch))  // "PERM"
        var i = count - 1
        while i > 0 {  // Fisher-Yates
            let j = rng.below(i + 1)
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }

    public func permutation(epoch: Int) -> [Int] {
        Self.permutation(count: count, seed: seed, epoch: epoch, serial: serial)
    }

    /// Moves `position` to a valid batch start (end of epoch -> next epoch).
    private func normalized(_ p: SamplerPosition) -> SamplerPosition {
        var p = p
        if p.index + globalBatch > count { p = SamplerPosition(epoch: p.epoch + 1, index: 0) }
        return p
    }

    /// All indices of the global batch that starts at `position` (all ranks).
    public func globalBatchIndices(at position: SamplerPosition) -> [Int] {
        let p = normalized(position)
        let order = p.epoch == cachedEpoch ? cachedOrder : permutation(epoch: p.epoch)
        return Array(order[p.index..<(p.index + globalBatch)])
    }

    /// This rank's next step; advances `position`.
    public mutating func next() -> SamplerStep {
        let p = normalized(position)
        if p.epoch != cachedEpoch {
            cachedOrder = permutation(epoch: p.epoch)
            cachedEpoch = p.epoch
        }
        let start = p.index + rank * localBatch
        let indices = Array(cachedOrder[start..<(start + localBatch)])
        position = SamplerPosition(epoch: p.epoch, index: p.index + globalBatch)
        return SamplerStep(epoch: p.epoch, globalOffset: p.index, indices: indices, positionAfter: position)
    }
}

/// The random augmentation decisions of one sample in one epoch, derived from
/// (seed, epoch, dataset index) only, so they do not depend on the number of
/// ranks or on which rank loads the sample.
public func augmentationRNG(seed: UInt64, epoch: Int, sampleIndex: Int) -> SplitMix64 {
    SplitMix64(keys: seed, 0x4155_474D, UInt64(epoch), UInt64(sampleIndex))  // "AUGM"
}
