import Foundation
import SpadeTestSupport
import XCTest

/// launch/: the single-node launcher runs 2 ranks for a few steps; its rank/thread/binding
/// choices; and every launch script passes `bash -n` (and shellcheck when installed).
final class LauncherTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let launcher = root + "/launch/run-node.sh"
    static let scripts = ["launch/setup.sh", "launch/train.sh", "launch/test.sh", "launch/run-node.sh",
                          "launch/slurm.sbatch", "launch/cluster-sim.sh", "launch/lib/apt.sh", ".ci/run"]

    /// `launch/run-node.sh args` with the binary under test.
    func launch(_ args: [String], in directory: String? = nil, timeout: Double = 240) throws -> ProcessResult {
        try ProcessRunner.run(Self.launcher, args, timeout: timeout,
                              environment: ["SPADE_DIST_BIN": try CLI.exe()], directory: directory)
    }

    func testTwoRanksTrainAFewSteps() throws {
        guard ProcessRunner.mpirun != nil else { throw XCTSkip("mpirun not found") }
        let dir = try CLI.tempDir("launcher")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = dir + "/run"
        let r = try launch(["-n", "2", "--", "train", "--steps", "3", "--run-dir", run,
                            "--set", "synthetic_count=8", "--set", "sample_every=3", "--set", "log_every=1"],
                           in: dir)
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertEqual(r.status, 0, r.output)
        // The launcher printed its choice and the mpirun command, and the trainer agreed.
        XCTAssert(r.output.contains("-> 2 rank(s) x "), r.output)
        XCTAssert(r.output.contains("mpirun -np 2"), r.output)
        XCTAssert(r.output.contains("world 2 ranks"), r.output)
        XCTAssert(r.output.contains("done at step 3"), r.output)
        let fm = FileManager.default
        XCTAssert(fm.fileExists(atPath: run + "/checkpoints/latest.safetensors"), r.output)
        XCTAssert(fm.fileExists(atPath: run + "/index.html"), r.output)
        let metrics = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8)
        XCTAssertEqual(metrics.split(separator: "\n").count, 3, metrics)
        // blas_threads was passed through to the effective config.
        let config = try String(contentsOfFile: run + "/config.yaml", encoding: .utf8)
        XCTAssert(config.contains("blas_threads: "), config)
        XCTAssertFalse(config.contains("blas_threads: 0\n"), config)
    }

    /// One rank with 2 BLAS threads: bound to 2 cores (OpenMPI would bind it to one), so the
    /// trainer does not warn about starved threads. `--steps 0` only validates and exits.
    func testOneRankTwoThreadsIsNotStarved() throws {
        guard ProcessRunner.mpirun != nil else { throw XCTSkip("mpirun not found") }
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        guard cpus >= 2 else { throw XCTSkip("needs 2 CPUs") }
        let dir = try CLI.tempDir("launcher1x2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try launch(["-n", "1", "-t", "2", "--", "train", "--steps", "0", "--run-dir", dir + "/run"], in: dir)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssert(r.output.contains("--map-by slot:PE=2"), r.output)
        XCTAssert(r.output.contains("1 ranks, 1 per node, 2 BLAS threads per rank"), r.output)
        XCTAssertFalse(r.output.contains("warning:"), r.output)
    }

    /// Ranks, threads and binding flags for given CPU counts (printed with --dry-run, nothing runs).
    func testLayoutChoices() throws {
        func dry(_ args: [String]) throws -> String {
            let r = try launch(["--dry-run"] + args)
            XCTAssertEqual(r.status, 0, r.output)
            return r.stdout
        }
        var out = try dry(["--cpus", "8"])
        XCTAssert(out.contains("8 CPUs -> 8 rank(s) x 1 OpenBLAS thread(s)"), out)
        XCTAssert(out.contains(" -np 8 ") && out.contains(" --bind-to core") || out.contains("--bind-to hwthread"), out)
        XCTAssert(out.contains(" train --set blas_threads=1"), out)

        out = try dry(["--cpus", "8", "-n", "2", "--", "train", "--config", "configs/small-128.yaml"])
        XCTAssert(out.contains("-> 2 rank(s) x 4 OpenBLAS thread(s)"), out)
        XCTAssert(out.contains("--map-by slot:PE=4"), out)
        XCTAssert(out.contains("train --set blas_threads=4 --config configs/small-128.yaml"), out)

        out = try dry(["--cpus", "8", "-t", "2"])
        XCTAssert(out.contains("-> 4 rank(s) x 2 OpenBLAS thread(s)"), out)

        let over = try launch(["--dry-run", "--cpus", "2", "-n", "4", "-t", "2"])
        XCTAssertEqual(over.status, 0, over.output)
        XCTAssert(over.stdout.contains("--oversubscribe --bind-to none"), over.output)
        XCTAssert(over.stderr.contains("warning"), over.output)

        // Subcommands without config keys get no --set; as root, mpirun needs --allow-run-as-root.
        out = try dry(["--cpus", "2", "--", "inspect", "x.safetensors"])
        XCTAssertFalse(out.contains("blas_threads"), out)
        XCTAssertEqual(out.contains("--allow-run-as-root"), getuid() == 0, out)

        let bad = try launch(["--dry-run", "-n", "zero"])
        XCTAssertEqual(bad.status, 2, bad.output)
        XCTAssert(bad.stderr.contains("--ranks must be a positive integer"), bad.output)
    }

    func testScriptsPassBashSyntaxCheckAndShellcheck() throws {
        for script in Self.scripts {
            let r = try ProcessRunner.run("/bin/bash", ["-n", Self.root + "/" + script], timeout: 30)
            XCTAssertEqual(r.status, 0, "\(script): \(r.output)")
        }
        let shellcheck = ["/usr/bin/shellcheck", "/usr/local/bin/shellcheck"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
        guard let shellcheck else { throw XCTSkip("shellcheck not installed (apt-get install shellcheck)") }
        let r = try ProcessRunner.run(shellcheck, Self.scripts.map { Self.root + "/" + $0 }, timeout: 60)
        XCTAssertEqual(r.status, 0, r.output)
    }
}
