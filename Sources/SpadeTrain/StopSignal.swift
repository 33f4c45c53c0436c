#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The signal number that asked to stop (0 = none). Allocated before any handler is
/// installed, so the handler only stores to it (async-signal-safe).
nonisolated(unsafe) private let stopFlag: UnsafeMutablePointer<sig_atomic_t> = {
    let p = UnsafeMutablePointer<sig_atomic_t>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
}()

/// The handler only records the signal. A repeated signal does not exit early: under
/// Slurm + mpirun a rank can get the same SIGTERM twice (from slurmstepd and forwarded).
private let stopHandler: @convention(c) (Int32) -> Void = { sig in
    stopFlag.pointee = sig
}

/// SIGTERM / SIGUSR1 request a graceful stop: the training loop checks `requested` at each
/// step boundary, all ranks agree (the trainer reduces it), a checkpoint is written, exit 0.
/// Slurm: `#SBATCH --signal=USR1@120` gives two minutes' notice before the time limit.
public enum StopSignal {
    /// The signals `install()` handles by default.
    public static let defaultSignals: [Int32] = [SIGTERM, SIGUSR1]

    /// Installs the handlers (sigaction, SA_RESTART so blocking calls are not interrupted).
    public static func install(_ signals: [Int32] = defaultSignals) {
        _ = stopFlag   // initialize the global now, never inside the handler
        for sig in signals {
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = stopHandler
            #else
            action.__sigaction_u.__sa_handler = stopHandler
            #endif
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(sig, &action, nil)
        }
    }

    /// Whether a stop signal has arrived.
    public static var requested: Bool { stopFlag.pointee != 0 }

    /// The signal that requested the stop, 0 if none.
    public static var signal: Int32 { stopFlag.pointee }

    /// Clears the request (tests; or after the stop has been handled).
    public static func reset() { stopFlag.pointee = 0 }

    /// Asks to stop as a signal would (e.g. from a watchdog in-process).
    public static func request(_ sig: Int32 = SIGUSR1) { stopFlag.pointee = sig }
}
