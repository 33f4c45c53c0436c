import SpadeDist
import SpadeNN

extension ReplicaSum: PendingStatisticsSum {}

/// Synchronized batch norm's reducer (the communicator's deterministic sum, bitwise identical
/// on every rank) with a clock: seconds spent starting and waiting for its collectives, which is
/// mostly waiting for the slowest rank ("sync_s" in metrics.jsonl).
final class TimedStatisticsReducer: StatisticsReducer {
    let inner: ReplicaStatisticsReducer
    private(set) var seconds = 0.0
    init(_ comm: Communicator) { inner = ReplicaStatisticsReducer(comm) }
    func startSumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) -> PendingStatisticsSum {
        let t0 = ProgressDisplay.monotonicSeconds()
        let sum = TimedSum(inner.startSum(values), self)
        seconds += ProgressDisplay.monotonicSeconds() - t0
        return sum
    }

    private final class TimedSum: PendingStatisticsSum {
        let sum: ReplicaSum
        unowned let clock: TimedStatisticsReducer
        init(_ sum: ReplicaSum, _ clock: TimedStatisticsReducer) { self.sum = sum; self.clock = clock }
        func wait() {
            let t0 = ProgressDisplay.monotonicSeconds()
            sum.wait()
            clock.seconds += ProgressDisplay.monotonicSeconds() - t0
        }
    }
}

/// Connects backward (which announces final gradients) to the bucketed
/// all-reduce of each network: the math never sees MPI, MPI never sees layers.
final class GradientSync: GradientObserver {
    let generator: GradientAllReducer
    let discriminator: GradientAllReducer
    private let generatorState: ObjectIdentifier
    private let parameterCountG: Int, parameterCountD: Int

    init(iteration it: TrainingIteration, communicator: Communicator, bucketBytes: Int) {
        generator = Self.reducer(it.generator.state, communicator, bucketBytes)
        discriminator = Self.reducer(it.discriminator.state, communicator, bucketBytes)
        generatorState = ObjectIdentifier(it.generator.state)
        parameterCountG = it.generator.state.params.count
        parameterCountD = it.discriminator.state.params.count
    }

    /// Backward finalises parameters roughly in reverse registration order; buckets follow it.
    private static func reducer(_ state: ModelState, _ comm: Communicator, _ bucketBytes: Int) -> GradientAllReducer {
        GradientAllReducer(communicator: comm, base: state.grads,
                           segments: state.params.reversed().map { ($0.name, $0.offset, $0.count) },
                           bucketBytes: bucketBytes)
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
