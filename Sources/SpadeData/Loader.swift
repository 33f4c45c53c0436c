import Foundation

/// Decodes and preprocesses the next batches of this rank on a background
/// thread while the caller computes. `next()` returns them in sampler order;
/// a decode error surfaces there as the thrown DataError naming the file.
public final class PrefetchingLoader: @unchecked Sendable {
    public let dataset: Dataset
    /// How many batches may be ready ahead of the caller.
    public let depth: Int
    /// The data position after the last batch returned by `next()` (what a
    /// checkpoint taken now must store to resume with the following batch).
    public private(set) var position: SamplerPosition
    /// Seconds the last `next()` waited for the background thread.
    public private(set) var lastWaitSeconds: Double = 0
    /// Sum of all waits.
    public private(set) var totalWaitSeconds: Double = 0
    /// Batches returned so far.
    public private(set) var batchesReturned = 0
    /// Batches decoded and waiting for `next()` (at most `depth`).
    public var readyCount: Int { state.count }

    private let state: LoaderState

    /// Starts prefetching from `sampler.position` (set it from a checkpoint to resume).
    public init(dataset: Dataset, sampler: ShardedSampler, depth: Int = 2) {
        precondition(depth >= 1)
        self.dataset = dataset
        self.depth = depth
        self.position = sampler.position
        let state = LoaderState(depth: depth)
        self.state = state
        let thread = Thread { LoaderState.run(state: state, dataset: dataset, sampler: sampler) }
        thread.name = "spade-data-prefetch"
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit { state.stop() }

    /// This rank's next batch (waits if it is not decoded yet).
    public func next() throws -> Batch {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let item = state.take()
        let waited = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        lastWaitSeconds = waited
        totalWaitSeconds += waited
        switch item {
        case .batch(let b, let after):
            position = after
            batchesReturned += 1
            return b
        case .failure(let e):
            throw e
        }
    }

    /// Stops the background thread (also done on deinit).
    public func stop() { state.stop() }
}

enum LoaderItem: @unchecked Sendable {
    case batch(Batch, SamplerPosition)
    case failure(Error)
}

/// The queue shared by the loader and its thread.
final class LoaderState: @unchecked Sendable {
    private let cond = NSCondition()
    private var queue: [LoaderItem] = []
    private var stopped = false
    private var failed = false
    let depth: Int

    init(depth: Int) { self.depth = depth }

    var count: Int {
        cond.lock(); defer { cond.unlock() }
        return queue.count
    }

    func stop() {
        cond.lock(); stopped = true; cond.broadcast(); cond.unlock()
    }

    func take() -> LoaderItem {
        cond.lock()
        defer { cond.unlock() }
        while queue.isEmpty && !stopped { cond.wait() }
        if queue.isEmpty { return .failure(DataError(path: "", "data loader was stopped")) }
        let item = queue.removeFirst()
        if case .failure = item { queue.insert(item, at: 0) }  // keep failing on later calls
        cond.broadcast()
        return item
    }

    /// Waits for room; false when stopped.
    private func waitForRoom() -> Bool {
        cond.lock()
        defer { cond.unlock() }
        while queue.count >= depth && !stopped { cond.wait() }
        return !stopped && !failed
    }

    private func put(_ item: LoaderItem) {
        cond.lock()
        queue.append(item)
        if case .failure = item { failed = true }
        cond.broadcast()
        cond.unlock()
    }

    static func run(state: LoaderState, dataset: Dataset, sampler s0: ShardedSampler) {
        var sampler = s0
        while state.waitForRoom() {
            let step = sampler.next()
            do {
                let batch = try dataset.makeBatch(indices: step.indices, epoch: step.epoch)
                state.put(.batch(batch, step.positionAfter))
            } catch {
                state.put(.failure(error))
                return
            }
        }
    }
}
