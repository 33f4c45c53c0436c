import SpadeDist
import SpadeNN

/// Synchronized batch norm's reducer (the communicator's deterministic sum, bitwise identical
/// on every rank) with a clock: seconds spent starting and waiting for its collectives, which is
/// mostly waiting for the slowest rank ("sync_s" in metrics.jsonl).
final class TimedStatisticsReducer: StatisticsReducer {
    let inner: ReplicaStatisticsReducer
    private(set) var seconds = 0.0
    init(_ comm: Communicator) { inner = ReplicaStatisticsReducer(comm) }
    func startSumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) -> PendingStatisticsSum {
        let t0 = monotonicSeconds()
        let sum = TimedSum(inner.startSum(values), self)
        seconds += monotonicSeconds() - t0
        return sum
    }

    private final class TimedSum: PendingStatisticsSum {
        let sum: ReplicaSum
        unowned let clock: TimedStatisticsReducer
        init(_ sum: ReplicaSum, _ clock: TimedStatisticsReducer) { self.sum = sum; self.clock = clock }
        func wait() {
            let t0 = monotonicSeconds()
            sum.wait()
            clock.seconds += monotonicSeconds() - t0
        }
    }
}

/// Connects backward (which announces final gradients) to the bucketed
/// reduction of each network: the math never sees MPI, MPI never sees layers.
///
/// With `sharedMemory` (and the same number of ranks on every node), each node holds the
/// training state in node-shared memory: every rank's gradients (checked by
/// `SharedMemoryGradientReducer`, summed by Adam as it reads them, or first across nodes by a
/// reduce-scatter) and one copy of the parameters and Adam moments, of which each rank updates
/// its own part (ZeRO-1: Adam's work divided by the rank count of the job, and no parameter
/// copies within a node; across nodes the updated parts are all-gathered). Otherwise (uneven
/// nodes, `gradient_transport: mpi`) MPI's non-blocking all-reduce over all ranks
/// (`GradientAllReducer`) and every rank updates its own full copy.
final class GradientSync: GradientObserver {
    let generator: GradientReducer
    let discriminator: GradientReducer
    private let generatorState: ObjectIdentifier
    private let parameterCountG: Int, parameterCountD: Int
    private let comm: Communicator
    private let shared: SharedTrainingState?
    private let wire: GradientWireType

    /// Where the node's one copy of the state lives (offsets in bytes into rank 0's segment).
    private struct SharedTrainingState {
        let memory: NodeSharedMemory
        /// The ranks sharing it (the world, or this node's part of it).
        let node: Communicator
        let valuesG: Int, valuesD: Int, expAvgG: Int, expAvgD: Int, expAvgSqG: Int, expAvgSqD: Int
        let rangesG: [Range<Int>], rangesD: [Range<Int>]
        func pointer(_ offset: Int) -> UnsafeMutablePointer<Float> {
            (memory.segment(of: 0) + offset).assumingMemoryBound(to: Float.self)
        }
    }

    init(iteration it: TrainingIteration, communicator comm: Communicator, bucketBytes: Int, sharedMemory: Bool,
         wire: GradientWireType = .float32) {
        let g = it.generator.state, d = it.discriminator.state
        generatorState = ObjectIdentifier(g)
        parameterCountG = g.params.count
        parameterCountD = d.params.count
        self.comm = comm
        self.wire = wire
        if sharedMemory, let (rg, rd, state) = Self.sharedMemoryReducers(g, d, comm, bucketBytes, wire) {
            generator = rg; discriminator = rd; shared = state
        } else {
            generator = GradientAllReducer(communicator: comm, base: g.grads, segments: Self.backwardOrder(g), bucketBytes: bucketBytes)
            discriminator = GradientAllReducer(communicator: comm, base: d.grads, segments: Self.backwardOrder(d), bucketBytes: bucketBytes)
            shared = nil
        }
    }

    /// Backward finalises parameters roughly in reverse registration order; buckets follow it.
    private static func backwardOrder(_ state: ModelState) -> [(name: String, offset: Int, count: Int)] {
        state.params.reversed().map { ($0.name, $0.offset, $0.count) }
    }

    /// Collective. Every rank's segment: [G gradients | D gradients | G flags | D flags]; local
    /// rank 0's also [G, D parameters | G, D exp_avg | G, D exp_avg_sq]. Several nodes with the
    /// same number of ranks each: the same per node, and the reducers go across nodes
    /// (hierarchical, gradients on the wire as `wire`). nil (on every rank) for uneven nodes.
    private static func sharedMemoryReducers(_ g: ModelState, _ d: ModelState, _ world: Communicator, _ bucketBytes: Int,
                                             _ wire: GradientWireType)
        -> (GradientReducer, GradientReducer, SharedTrainingState)? {
        guard world.size > 1 else { return nil }
        let comm: Communicator, crossNode: Communicator?
        if world.localSize == world.size {
            comm = world; crossNode = nil
        } else if let split = world.splitByNode() {
            comm = split.node; crossNode = split.crossNode
        } else {
            return nil
        }
        func aligned(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }
        let segG = backwardOrder(g), segD = backwardOrder(d)
        let bytesG = aligned(4 * g.parameterCount), bytesD = aligned(4 * d.parameterCount)
        let flagsG = SharedMemoryGradientReducer.flagCount(gradientCounts: segG.map(\.count), bucketBytes: bucketBytes)
        let flagsD = SharedMemoryGradientReducer.flagCount(gradientCounts: segD.map(\.count), bucketBytes: bucketBytes)
        let gradG = 0, gradD = bytesG, flagG = gradD + bytesD, flagD = flagG + aligned(8 * flagsG)
        let valuesG = flagD + aligned(8 * flagsD), valuesD = valuesG + bytesG
        let expAvgG = valuesD + bytesD, expAvgD = expAvgG + bytesG
        let expAvgSqG = expAvgD + bytesD, expAvgSqD = expAvgSqG + bytesG
        let end = expAvgSqD + bytesD
        guard let memory = comm.allocateNodeShared(bytes: comm.rank == 0 ? end : valuesG) else { return nil }
        func at<T>(_ rank: Int, _ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> {
            (memory.segment(of: rank) + offset).assumingMemoryBound(to: T.self)
        }
        at(comm.rank, flagG, Int64.self).initialize(repeating: 0, count: flagsG)
        at(comm.rank, flagD, Int64.self).initialize(repeating: 0, count: flagsD)
        g.adoptGradientStorage(at(comm.rank, gradG, Float.self))
        d.adoptGradientStorage(at(comm.rank, gradD, Float.self))
        memory.synchronize()
        comm.barrier()   // every rank's flags are zero before anyone raises one
        memory.synchronize()
        let ranks = 0..<comm.size
        let stillWaiting = { (what: String, since: Double) in world.stillWaiting(for: what, since: since) }
        let reducerG = SharedMemoryGradientReducer(
            rank: comm.rank, memory: memory, gradients: ranks.map { at($0, gradG, Float.self) },
            flags: ranks.map { at($0, flagG, Int64.self) }, segments: segG,
            bucketBytes: bucketBytes, crossNode: crossNode, wire: wire, stillWaiting: stillWaiting)
        let reducerD = SharedMemoryGradientReducer(
            rank: comm.rank, memory: memory, gradients: ranks.map { at($0, gradD, Float.self) },
            flags: ranks.map { at($0, flagD, Int64.self) }, segments: segD,
            bucketBytes: bucketBytes, crossNode: crossNode, wire: wire, stillWaiting: stillWaiting)
        let state = SharedTrainingState(memory: memory, node: comm, valuesG: valuesG, valuesD: valuesD, expAvgG: expAvgG,
                                        expAvgD: expAvgD, expAvgSqG: expAvgSqG, expAvgSqD: expAvgSqD,
                                        rangesG: reducerG.ownedRanges, rangesD: reducerD.ownedRanges)
        return (reducerG, reducerD, state)
    }

    /// Collective, once every rank holds the same initial state: parameters and Adam moments
    /// move into node-shared memory (rank 0's copy of the parameters; each rank's own part of
    /// the moments, so that across nodes a node touches only its parts; the rest is dropped).
    func shareOptimizerState(_ it: TrainingIteration) {
        guard let shared else { return }
        let copy = shared.node.rank == 0
        it.generator.state.adoptValueStorage(shared.pointer(shared.valuesG), copyingCurrentValues: copy)
        it.discriminator.state.adoptValueStorage(shared.pointer(shared.valuesD), copyingCurrentValues: copy)
        it.adamG.adoptMomentStorage(expAvg: shared.pointer(shared.expAvgG), expAvgSq: shared.pointer(shared.expAvgSqG),
                                    copying: shared.rangesG)
        it.adamD.adoptMomentStorage(expAvg: shared.pointer(shared.expAvgD), expAvgSq: shared.pointer(shared.expAvgSqD),
                                    copying: shared.rangesD)
        // Every node already holds the same state (broadcast): nothing to gather, but no rank may
        // read or send the parameters before local rank 0 has copied them.
        synchronizeNode(shared)
    }

    /// Collective, before a checkpoint (or any other read of the whole state): across nodes,
    /// every node's parts of the Adam moments reach every node. Nothing to do on one node.
    func gatherOptimizerState(_ it: TrainingIteration) {
        guard let shared, let reducerG = generator as? SharedMemoryGradientReducer,
              let reducerD = discriminator as? SharedMemoryGradientReducer else { return }
        let pending = reducerG.startGather(it.adamG.expAvg) + reducerG.startGather(it.adamG.expAvgSq)
            + reducerD.startGather(it.adamD.expAvg) + reducerD.startGather(it.adamD.expAvgSq)
        for p in pending { p.wait() }
        synchronizeNode(shared)
    }

    /// How gradients cross ranks, for the start-up line.
    var transportDescription: String {
        guard let shared else { return "gradients summed by MPI all-reduce" }
        if shared.node.size == comm.size { return "gradients summed in node-shared memory" }
        return "gradients summed in node-shared memory, then across \(comm.size / shared.node.size) nodes by reduce-scatter"
            + " (\(wire.rawValue)) and parameter all-gather (hierarchical; optimizer sharded over all ranks)"
    }

    /// This rank's part of each network's optimizer update (nil: all of it).
    var updateRangesG: [Range<Int>]? { shared?.rangesG }
    var updateRangesD: [Range<Int>]? { shared?.rangesD }

    /// Collective, after every optimizer update: with a shared state, no rank reads parameters
    /// (next forward) or moments (checkpoint) before every rank has written its part, and
    /// across nodes every node's updated parts have arrived. Returns the seconds spent waiting
    /// for those parameters from the other nodes (part of the step's comm_wait_s).
    @discardableResult
    func updatesApplied() -> Double {
        guard let shared else { return 0 }
        var waited = 0.0
        if let reducerG = generator as? SharedMemoryGradientReducer, let reducerD = discriminator as? SharedMemoryGradientReducer {
            let t0 = monotonicSeconds()
            let pending = reducerG.startGather(shared.pointer(shared.valuesG)) + reducerD.startGather(shared.pointer(shared.valuesD))
            for p in pending { p.wait() }
            waited = monotonicSeconds() - t0
        }
        synchronizeNode(shared)
        return waited
    }

    private func synchronizeNode(_ shared: SharedTrainingState) {
        shared.memory.synchronize()
        shared.node.barrier()
        shared.memory.synchronize()
    }

    func gradientReady(_ parameter: ParamRef, in state: ModelState) {
        if ObjectIdentifier(state) == generatorState {
            generator.markReady(parameterCountG - 1 - parameter.index)
        } else {
            discriminator.markReady(parameterCountD - 1 - parameter.index)
        }
    }

    func poll() {
        discriminator.poll()
        generator.poll()
    }
}
