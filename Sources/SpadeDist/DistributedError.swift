// Errors of the distributed layer and how they end a job.

/// An error that knows the process exit code it deserves and whether every
/// rank raises it identically (then only rank 0 needs to print it).
public protocol ExitCodeError: Error, CustomStringConvertible {
    /// 2 for user/config/data errors, 1 for runtime failures.
    var exitCode: Int32 { get }
    /// True if all ranks throw the same error at the same point (e.g. after a collective check).
    var sameOnAllRanks: Bool { get }
}

extension ExitCodeError {
    public var sameOnAllRanks: Bool { false }
}

public enum DistributedError: ExitCodeError, Equatable {
    /// Ranks run different configs or model shapes (a user error: exit 2).
    case inconsistent(String)
    /// Replica parameters differ across ranks (a bug: exit 1).
    case replicasDiverged(String)
    /// A non-finite loss or gradient and the config says stop.
    case nonFinite(String)
    /// MPI itself failed.
    case mpi(String)

    public var exitCode: Int32 {
        switch self {
        case .inconsistent: return 2
        case .replicasDiverged, .nonFinite, .mpi: return 1
        }
    }
    public var sameOnAllRanks: Bool {
        switch self {
        case .inconsistent, .replicasDiverged, .nonFinite: return true
        case .mpi: return false
        }
    }
    public var description: String {
        switch self {
        case .inconsistent(let m), .replicasDiverged(let m), .nonFinite(let m), .mpi(let m): return m
        }
    }
}
