// Runs spade-dist-commcheck under mpirun with a timeout, so a hang fails a test
// instead of blocking the suite.

import Foundation
import SpadeTestSupport
import XCTest

typealias MPIRun = ProcessResult

enum MPIRunner {
    static let mpirun = ProcessRunner.mpirun

    /// The built spade-dist-commcheck ($SPADE_COMMCHECK overrides).
    static let commcheck = ProcessRunner.builtProduct("spade-dist-commcheck", environmentOverride: "SPADE_COMMCHECK")

    /// Runs `mpirun -np np [mpiArgs] commcheck args`, killing it after `timeout` seconds.
    /// `whileRunning` is called once, on this thread, after launch (e.g. to kill a rank).
    static func run(np: Int, _ args: [String], mpiArgs: [String] = [], timeout: Double = 30,
                    whileRunning: (() -> Void)? = nil) throws -> MPIRun {
        guard let exe = commcheck else {
            XCTFail("spade-dist-commcheck not built: run `swift build -c release` first, or set SPADE_COMMCHECK")
            throw XCTSkip("no commcheck")
        }
        return try ProcessRunner.mpi(np: np, exe, args, mpiArgs: mpiArgs, timeout: timeout,
                                     whileRunning: whileRunning.map { f in { _ in f() } })
    }

    /// Runs commcheck directly, without mpirun.
    static func runDirect(_ args: [String], timeout: Double = 30) throws -> MPIRun {
        guard let exe = commcheck else {
            XCTFail("spade-dist-commcheck not built"); throw XCTSkip("no commcheck")
        }
        return try ProcessRunner.run(exe, args, timeout: timeout)
    }
}

/// Asserts a clean, successful run whose stdout contains `expected`.
func assertOK(_ r: MPIRun, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertFalse(r.timedOut, "timed out after \(r.seconds) s\nstdout:\n\(r.stdout)\nstderr:\n\(r.stderr)", file: file, line: line)
    XCTAssertEqual(r.status, 0, "exit status\nstdout:\n\(r.stdout)\nstderr:\n\(r.stderr)", file: file, line: line)
    XCTAssertTrue(r.stdout.contains(expected), "missing '\(expected)'\nstdout:\n\(r.stdout)\nstderr:\n\(r.stderr)", file: file, line: line)
}

func occurrences(of needle: String, in haystack: String) -> Int {
    haystack.components(separatedBy: needle).count - 1
}
