// Runs spade-dist-commcheck under mpirun with a timeout, so a hang fails a test
// instead of blocking the suite.

import Foundation
import SpadeTestSupport
import XCTest

struct MPIRun {
    var status: Int32
    var signaled: Bool
    var stdout: String
    var stderr: String
    var seconds: Double
    var timedOut: Bool
}

enum MPIRunner {
    static let mpirun: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") + ["/usr/bin"] {
            let p = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }()

    /// The built spade-dist-commcheck: $SPADE_COMMCHECK, else next to the test
    /// bundle, else the newest .build*/{release,debug}/spade-dist-commcheck of the package.
    static let commcheck: String? = {
        let fm = FileManager.default
        let name = "spade-dist-commcheck"
        if let p = ProcessInfo.processInfo.environment["SPADE_COMMCHECK"] { return fm.isExecutableFile(atPath: p) ? p : nil }
        var candidates: [String] = []
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argv0.deletingLastPathComponent().appendingPathComponent(name).path)
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
            candidates.append(URL(fileURLWithPath: b.bundlePath).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        if let p = candidates.first(where: { fm.isExecutableFile(atPath: $0) }) { return p }
        // Fallback: search the package's scratch directories, newest first.
        let root = Fixtures.packageRoot
        var found: [(String, Date)] = []
        for dir in (try? fm.contentsOfDirectory(atPath: root)) ?? [] where dir.hasPrefix(".build") {
            for config in ["release", "debug"] {
                let p = "\(root)/\(dir)/\(config)/\(name)"
                if fm.isExecutableFile(atPath: p),
                   let d = (try? fm.attributesOfItem(atPath: p))?[.modificationDate] as? Date {
                    found.append((p, d))
                }
            }
        }
        return found.max { $0.1 < $1.1 }?.0
    }()

    /// Runs `mpirun -np np [mpiArgs] commcheck args`, killing it after `timeout` seconds.
    /// `whileRunning` is called once, on this thread, after launch (e.g. to kill a rank).
    static func run(np: Int, _ args: [String], mpiArgs: [String] = [], timeout: Double = 30,
                    whileRunning: (() -> Void)? = nil) throws -> MPIRun {
        guard let mpirun else { throw XCTSkip("mpirun not found on PATH (apt install openmpi-bin)") }
        guard let exe = commcheck else {
            XCTFail("spade-dist-commcheck not built: run `swift build -c release --scratch-path .build-dist` first, or set SPADE_COMMCHECK")
            throw XCTSkip("no commcheck")
        }
        return try runProcess(mpirun, ["-np", "\(np)", "--oversubscribe"] + mpiArgs + [exe] + args,
                              timeout: timeout, whileRunning: whileRunning)
    }

    /// Runs commcheck directly, without mpirun.
    static func runDirect(_ args: [String], timeout: Double = 30) throws -> MPIRun {
        guard let exe = commcheck else {
            XCTFail("spade-dist-commcheck not built"); throw XCTSkip("no commcheck")
        }
        return try runProcess(exe, args, timeout: timeout, whileRunning: nil)
    }

    static func runProcess(_ path: String, _ args: [String], timeout: Double,
                           whileRunning: (() -> Void)?) throws -> MPIRun {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("commcheck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["SWIFT_BACKTRACE"] = "enable=no"  // crash tests: no symbolication delay
        p.environment = env
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        let start = Date()
        try p.run()
        whileRunning?()
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                p.terminate()  // SIGTERM: mpirun forwards it and kills its ranks
                let t = Date()
                while p.isRunning && Date().timeIntervalSince(t) < 5 { usleep(50_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        return MPIRun(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
                      seconds: seconds, timedOut: timedOut)
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
