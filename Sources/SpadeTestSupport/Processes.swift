// Runs built executables (directly or under mpirun) with a timeout, so a hang
// fails a test instead of blocking the suite.

import Foundation
import XCTest

/// How a child process ended.
public struct ProcessResult {
    public var status: Int32
    public var signaled: Bool
    public var stdout: String
    public var stderr: String
    public var seconds: Double
    public var timedOut: Bool
    public var output: String { stdout + stderr }
}

public enum ProcessRunner {
    public static let mpirun: String? = {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") + ["/usr/bin"] {
            let p = "\(dir)/mpirun"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }()

    /// A product of this package: $<ENV>, else next to the test bundle, else the newest
    /// .build*/{release,debug}/<name> of the package.
    public static func builtProduct(_ name: String, environmentOverride: String? = nil) -> String? {
        let fm = FileManager.default
        if let key = environmentOverride, let p = ProcessInfo.processInfo.environment[key] {
            return fm.isExecutableFile(atPath: p) ? p : nil
        }
        var candidates: [String] = []
        let argv0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argv0.deletingLastPathComponent().appendingPathComponent(name).path)
        for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") {
            candidates.append(URL(fileURLWithPath: b.bundlePath).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        if let p = candidates.first(where: { fm.isExecutableFile(atPath: $0) }) { return p }
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
    }

    /// `mpirun -np np --oversubscribe [mpiArgs] exe args` with a timeout.
    public static func mpi(np: Int, _ exe: String, _ args: [String], mpiArgs: [String] = [], timeout: Double = 60,
                           environment: [String: String] = [:], directory: String? = nil,
                           whileRunning: ((Process) -> Void)? = nil) throws -> ProcessResult {
        guard let mpirun else { throw XCTSkip("mpirun not found on PATH (apt install openmpi-bin)") }
        return try run(mpirun, ["-np", "\(np)", "--oversubscribe"] + mpiArgs + [exe] + args, timeout: timeout,
                       environment: environment, directory: directory, whileRunning: whileRunning)
    }

    /// Runs `path args`; after `timeout` seconds SIGTERM (mpirun forwards it), then SIGKILL.
    /// `whileRunning` is called once, on this thread, right after launch (e.g. to kill a rank).
    public static func run(_ path: String, _ args: [String], timeout: Double = 60, environment: [String: String] = [:],
                           directory: String? = nil, whileRunning: ((Process) -> Void)? = nil) throws -> ProcessResult {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spade-proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["SWIFT_BACKTRACE"] = "enable=no"  // crash tests: no symbolication delay
        for (k, v) in environment { env[k] = v }
        p.environment = env
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = FileHandle.nullDevice
        let start = Date()
        try p.run()
        whileRunning?(p)
        var timedOut = false
        while p.isRunning {
            if Date().timeIntervalSince(start) > timeout {
                timedOut = true
                p.terminate()
                let t = Date()
                while p.isRunning && Date().timeIntervalSince(t) < 5 { usleep(50_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            usleep(20_000)
        }
        p.waitUntilExit()
        return ProcessResult(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal,
                             stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                             stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
                             seconds: Date().timeIntervalSince(start), timedOut: timedOut)
    }
}
