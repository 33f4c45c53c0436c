// Faults during training (issue 15; docs/robustness.md): a full disk while checkpoints,
// samples and metrics are written, and NaN gradients on one rank, once or persistently.

import Foundation
import SafeTensors
import SpadeData
import SpadeTestSupport
import XCTest

/// A full file system: a small tmpfs mounted for the test (skipped where mounting is not
/// allowed). Training stops with exit 1 and one line naming the file; everything already on
/// disk stays whole, and `--resume auto` continues once there is space.
final class DiskFullTests: XCTestCase {
    /// A tmpfs of `megabytes` at a fresh mount point, unmounted and removed after the test.
    func mountTmpfs(megabytes: Int) throws -> String {
        let dir = try CLI.tempDir("diskfull")
        let r = try ProcessRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", dir])
        guard r.status == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            throw XCTSkip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): \(r.stderr)")
        }
        addTeardownBlock {
            _ = try? ProcessRunner.run("/bin/umount", [dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        return dir
    }

    /// The run ended with exit 1 and exactly one error line, which names a file in the run
    /// directory and the full disk; returns that line.
    @discardableResult
    func assertStoppedOnFullDisk(_ r: ProcessResult, run: RunDirectory, file: StaticString = #filePath, line: UInt = #line) -> String {
        XCTAssertFalse(r.timedOut, r.output, file: file, line: line)
        XCTAssertEqual(r.status, 1, r.output, file: file, line: line)
        XCTAssertFalse(r.signaled, r.output, file: file, line: line)
        let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("spade-dist: ") }
        XCTAssertEqual(errors.count, 1, r.stderr, file: file, line: line)
        let message = String(errors.first ?? "")
        XCTAssert(message.contains(run.path + "/") && message.contains("No space left on device"), message, file: file, line: line)
        return message
    }

    /// Nothing torn: no temporary files, every metrics line a whole record, every event file
    /// whole, every sample a decodable PNG, index.html complete, every checkpoint complete.
    func assertNothingTorn(_ run: RunDirectory, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(run.temporaryFiles(), [], file: file, line: line)
        XCTAssertNoThrow(try run.metrics(), file: file, line: line)
        for events in run.eventFiles() { XCTAssertNoThrow(try EventFile.events(path: events), events, file: file, line: line) }
        let samples = (try? FileManager.default.contentsOfDirectory(atPath: run.path + "/samples")) ?? []
        for s in samples { XCTAssertNoThrow(try readImage(path: run.path + "/samples/" + s), s, file: file, line: line) }
        if let page = try? String(contentsOfFile: run.path + "/index.html", encoding: .utf8) {
            XCTAssert(page.hasSuffix("</html>\n"), "index.html is cut", file: file, line: line)
        }
        for step in run.checkpointSteps() {
            XCTAssertNoThrow(try loadCheckpoint(run.checkpoint(step: step)), "step \(step)", file: file, line: line)
        }
    }

    /// Room for one checkpoint of the small model (about 19 MB) but not two: the second write
    /// fails; the first checkpoint and `latest` stay; after making room, `--resume auto` finishes.
    func testCheckpointOnAFullDiskStopsAndKeepsTheLastOne() throws {
        let mount = try mountTmpfs(megabytes: 28)
        let run = RunDirectory(path: mount + "/run")
        let opts = E2E.small + ["--set", "checkpoint_every=2", "--set", "keep_checkpoints=1", "--set", "log_every=1",
                                "--set", "sample_every=0", "--run-dir", run.path]
        let r = try E2E.run(["train", "--steps", "6"] + opts)
        let message = assertStoppedOnFullDisk(r, run: run)
        XCTAssert(message.contains(run.checkpoint(step: 4)), message)
        XCTAssertEqual(run.checkpointSteps(), [2])
        XCTAssertEqual(run.latestTarget(), "step_00000002.safetensors")
        XCTAssertEqual(try loadCheckpoint(run.latest).metadata["step"], "2")
        try assertNothingTorn(run)
        XCTAssertEqual(try run.metrics().map { $0.object["step"] as? Int }, (1...4).map { Optional($0) })

        let grow = try ProcessRunner.run("/bin/mount", ["-o", "remount,size=64m", mount])
        XCTAssertEqual(grow.status, 0, grow.stderr)
        let resumed = try E2E.run(["train", "--resume", "auto", "--steps", "6"] + opts)
        E2E.assertSuccess(resumed, "resume after the disk was full")
        XCTAssertEqual(run.checkpointSteps(), [6])
        XCTAssertEqual(try run.metrics().map { $0.object["step"] as? Int }, (1...6).map { Optional($0) })
    }

    /// The disk fills up mid-run (a filler file takes the rest of the tmpfs after the first
    /// sample): whichever write comes next (a sample, index.html, metrics.jsonl or an event
    /// record) fails, the run stops naming it, and every file already there is whole.
    func testSamplesAndMetricsOnAFullDiskStopWithNothingTorn() throws {
        let mount = try mountTmpfs(megabytes: 4)
        let run = RunDirectory(path: mount + "/run")
        let opts = E2E.small + ["--set", "checkpoint_every=0", "--set", "log_every=1", "--set", "sample_every=2",
                                "--run-dir", run.path]
        var filled = false
        let r = try E2E.run(["train", "--steps", "100000"] + opts) { p in
            guard E2E.waitFor(p, { FileManager.default.fileExists(atPath: run.sample(step: 2)) }) else { return }
            filled = Self.fill(mount + "/filler")
        }
        XCTAssert(filled, "the tmpfs was not filled\n\(r.output)")
        assertStoppedOnFullDisk(r, run: run)
        try assertNothingTorn(run)
        XCTAssertEqual(run.checkpointSteps(), [])
    }

    /// Writes zeros to `path` until the file system is full; true when it is.
    static func fill(_ path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {   // a partial write is followed by one that fails with ENOSPC
            let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, $0.count) }
            if n < 0 { return errno == ENOSPC }
        }
    }
}

/// NaN gradients injected on one rank through the test hook SPADE_DIST_TEST_NAN_GRADIENT
/// (docs/robustness.md): every rank skips the same steps, the log marks them, and a NaN that
/// persists ends the run after `max_skipped_steps` with the last checkpoint intact.
final class NonFiniteStepTests: XCTestCase {
    func mpi(_ args: [String], nan spec: String) throws -> ProcessResult {
        try ProcessRunner.mpi(np: 2, try CLI.exe(), args, timeout: E2E.timeout,
                              environment: E2E.backtraceOn.merging(["SPADE_DIST_TEST_NAN_GRADIENT": spec]) { $1 })
    }

    /// Rank 1's gradient is NaN at step 3 only: both ranks skip step 3 (replicas are compared
    /// after every step), metrics.jsonl marks it, and Adam took one update fewer than the steps.
    func testOneNaNOnOneRankSkipsThatStepOnAllRanks() throws {
        let dir = try CLI.tempDir("nan-once")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        let r = try mpi(["train", "--steps", "6", "--run-dir", run.path, "--set", "log_every=1", "--set", "sample_every=0",
                         "--set", "drift_check_every=1"] + E2E.small, nan: "1:3")
        E2E.assertSuccess(r, "a run with one NaN gradient")
        XCTAssert(r.stdout.contains("non-finite loss or gradient at step 3: step skipped (1 so far)"), r.stdout)
        let metrics = try run.metrics().map(\.object)
        XCTAssertEqual(metrics.map { $0["step"] as? Int }, (1...6).map { Optional($0) })
        XCTAssertEqual(metrics.map { $0["skipped"] as? Int }, [nil, nil, 1, nil, nil, nil])
        XCTAssertEqual(metrics.map { $0["skipped_steps"] as? Int }, [nil, nil, 1, 1, 1, 1])
        let ck = try loadCheckpoint(run.latest)
        XCTAssertEqual(ck.metadata["step"], "6")
        XCTAssertEqual(ck.metadata["skipped_steps"], "1")
        XCTAssertEqual(ck["optG.step"]?.int64s, [5])
        XCTAssertEqual(ck["optD.step"]?.int64s, [5])
    }

    /// Rank 0's gradient is NaN from step 4 on, max_skipped_steps 3: steps 4, 5 and 6 are
    /// skipped and logged, then every rank stops with exit 1 and one message; the checkpoint of
    /// step 4 (taken while the state was still good) is the latest and loads.
    func testPersistentNaNStopsAfterMaxSkippedSteps() throws {
        let dir = try CLI.tempDir("nan-persistent")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        let r = try mpi(["train", "--steps", "20", "--run-dir", run.path, "--set", "log_every=5", "--set", "sample_every=0",
                         "--set", "checkpoint_every=2", "--set", "max_skipped_steps=3"] + E2E.small, nan: "0:4+")
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertEqual(r.stderr.components(separatedBy: "max_skipped_steps 3").count - 1, 1, r.stderr)
        XCTAssert(r.stderr.contains("3 steps in a row skipped"), r.stderr)
        let metrics = try run.metrics().map(\.object)
        XCTAssertEqual(metrics.map { $0["step"] as? Int }, [1, 4, 5, 6])
        XCTAssertEqual(metrics.map { $0["skipped"] as? Int }, [nil, 1, 1, 1])
        XCTAssertEqual(run.checkpointSteps(), [2, 4])
        XCTAssertEqual(run.latestTarget(), "step_00000004.safetensors")
        let ck = try loadCheckpoint(run.latest)
        XCTAssertEqual(ck["optG.step"]?.int64s, [3])
        XCTAssertEqual(run.temporaryFiles(), [])
    }
}
