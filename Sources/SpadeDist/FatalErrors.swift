// How one rank's failure ends the whole job: one message, MPI_Abort, no hangs.

import Foundation

/// Runs the trainer's body. An error thrown on any rank prints
/// "rank R: message" once to stderr and aborts the whole job (MPI_Abort) with
/// the error's exit code: `ExitCodeError.exitCode` (2 for user/config/data
/// errors), 1 for anything else. An error that every rank throws identically
/// (`sameOnAllRanks`, e.g. a failed consistency check) is printed by rank 0
/// only; the other ranks wait for the abort to reach them.
///
/// Crashes that are not Swift errors (precondition failure, SIGKILL by the
/// OOM killer, a segfault) end the process by a signal; mpirun then kills
/// the remaining ranks (README.md "Failure behaviour").
public func runGuarded<T>(_ comm: Communicator, _ body: () throws -> T) -> T {
    do {
        return try body()
    } catch {
        let code: Int32
        var collective = false
        var message = "\(error)"
        if let e = error as? ExitCodeError {
            code = e.exitCode
            collective = e.sameOnAllRanks
            message = e.description
        } else {
            code = 1
        }
        if collective && comm.rank != 0 && comm.size > 1 {
            // Rank 0 prints the same message and aborts the job, which kills us.
            // Should that not happen, abort anyway, silently.
            Thread.sleep(forTimeInterval: 10)
            comm.abort(message: "", code: code)
        }
        comm.abort(message: message, code: code)
    }
}
