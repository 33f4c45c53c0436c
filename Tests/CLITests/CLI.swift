import Foundation
import SpadeTestSupport
import XCTest

/// The built spade-dist binary ($SPADE_DIST_BIN overrides).
enum CLI {
    static let binary = ProcessRunner.builtProduct("spade-dist", environmentOverride: "SPADE_DIST_BIN")

    static func exe() throws -> String {
        guard let b = binary else {
            XCTFail("spade-dist not built: run `swift build -c release` first, or set SPADE_DIST_BIN")
            throw XCTSkip("no spade-dist binary")
        }
        return b
    }

    /// `spade-dist args` in `directory`.
    static func run(_ args: [String], in directory: String? = nil, timeout: Double = 120) throws -> ProcessResult {
        try ProcessRunner.run(try exe(), args, timeout: timeout, directory: directory)
    }

    /// `mpirun -np np spade-dist args` in `directory`.
    static func mpi(np: Int, _ args: [String], in directory: String? = nil, timeout: Double = 180,
                    whileRunning: ((Process) -> Void)? = nil) throws -> ProcessResult {
        try ProcessRunner.mpi(np: np, try exe(), args, timeout: timeout, directory: directory, whileRunning: whileRunning)
    }

    /// A fresh temporary directory.
    static func tempDir(_ tag: String) throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("spade-\(tag)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }
}
