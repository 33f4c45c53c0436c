import SpadeDist
import SpadeNN

/// Synchronized batch norm: the math's statistics reducer is the communicator's
/// deterministic all-reduce (bitwise identical on every rank).
extension ReplicaStatisticsReducer: StatisticsReducer {}

/// The batch-norm reducer with a clock: seconds spent in its blocking collectives, which is
/// mostly waiting for the slowest rank at each batch-norm layer ("sync_s" in metrics.jsonl).
final class TimedStatisticsReducer: StatisticsReducer {
    let inner: ReplicaStatisticsReducer
    private(set) var seconds = 0.0
    init(_ comm: Communicator) { inner = ReplicaStatisticsReducer(comm) }
    func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        let t0 = ProgressDisplay.monotonicSeconds()
        inner.sumAcrossReplicas(values)
        seconds += ProgressDisplay.monotonicSeconds() - t0
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
