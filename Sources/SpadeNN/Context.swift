import SpadeCore

/// Training (batch statistics, spectral-norm power iteration) or evaluation.
/// Always passed as an argument, never global state.
public enum Mode: Sendable { case train, eval }

/// Sums per-channel statistics across data-parallel replicas (synchronized
/// batch norm). One process: the identity. The result must be bitwise equal
/// on every replica. Non-blocking, so that a layer can compute something else
/// while the replicas exchange their sums (and absorb their speed differences).
public protocol StatisticsReducer: AnyObject {
    /// Starts the sum; `values` holds it once the returned handle's `wait()` returned
    /// and must stay untouched until then.
    func startSumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) -> PendingStatisticsSum
}

/// A started `StatisticsReducer` sum.
public protocol PendingStatisticsSum: AnyObject {
    func wait()
}

/// Told when a parameter's gradient is final during backward, so its
/// all-reduce can start while backward continues; `poll()` is called between
/// layers to progress communication.
public protocol GradientObserver: AnyObject {
    func gradientReady(_ parameter: ParamRef, in state: ModelState)
    func poll()
}

/// What every forward/backward call shares: activation memory for the step,
/// scratch for im2col, and the two hooks to the outside (no MPI here).
public final class Context {
    public let arena: Arena
    public let workspace: Workspace
    public var reducer: StatisticsReducer?
    public var observer: GradientObserver?

    public init(arena: Arena = Arena(), workspace: Workspace = Workspace(),
                reducer: StatisticsReducer? = nil, observer: GradientObserver? = nil) {
        self.arena = arena
        self.workspace = workspace
        self.reducer = reducer
        self.observer = observer
    }

    @inline(__always) func gradientReady(_ p: ParamRef, _ state: ModelState) {
        observer?.gradientReady(p, in: state)
    }

    @inline(__always) func poll() { observer?.poll() }
}

/// PyTorch constants, in one place.
public enum TorchConstants {
    public static let leakySlope: Float = 0.2
    public static let batchNormEps: Double = 1e-5
    public static let batchNormMomentum: Float = 0.1
    public static let instanceNormEps: Double = 1e-5
    public static let spectralNormEps: Float = 1e-12
}
