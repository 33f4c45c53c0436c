// Stopping and killing `spade-dist train` (issue 5): SIGTERM leaves a loadable checkpoint and
// exit code 0; SIGKILL of rank 0 while it writes checkpoints never leaves a torn `latest`.

import Foundation
import SafeTensors
import SpadeTestSupport
import XCTest

final class RobustnessTests: XCTestCase {
    /// Waits until metrics.jsonl has more than `lines` lines.
    private func waitForMetrics(_ run: RunDirectory, moreThan lines: Int, _ process: Process) -> Bool {
        E2E.waitFor(process) {
            let text = (try? String(contentsOfFile: run.path + "/metrics.jsonl", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").count > lines
        }
    }

    /// One rank: SIGTERM mid-run -> checkpoint at the step reached, exit 0; `--resume auto` continues.
    func testSIGTERMWritesCheckpointExitsZeroAndResumeContinues() throws {
        let dir = try CLI.tempDir("sigterm")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        // checkpoint_every 0: the only checkpoint is the one the stop request writes.
        let opts = E2E.small + ["--set", "log_every=1", "--set", "checkpoint_every=0", "--run-dir", run.path]
        var signaled = false
        let r = try E2E.run(["train", "--steps", "100000"] + opts) { p in
            guard self.waitForMetrics(run, moreThan: 2, p) else { return }
            kill(p.processIdentifier, SIGTERM)
            signaled = true
        }
        XCTAssert(signaled, "training never logged 3 steps\n\(r.output)")
        E2E.assertSuccess(r, "train stopped by SIGTERM")
        XCTAssert(r.stdout.contains("stop requested (signal)"), r.stdout)
        let steps = run.checkpointSteps()
        XCTAssertEqual(steps.count, 1, "\(run.checkpointNames())")
        let stoppedAt = try XCTUnwrap(steps.first)
        XCTAssert(stoppedAt >= 3 && stoppedAt < 100000)
        XCTAssertEqual(run.latestTarget(), (run.checkpoint(step: stoppedAt) as NSString).lastPathComponent)
        let ck = try loadCheckpoint(run.latest)
        XCTAssertEqual(ck.metadata["step"], "\(stoppedAt)")
        XCTAssertEqual(ck["optG.step"]?.int64s, [Int64(stoppedAt)])
        XCTAssertEqual(try run.metrics().last?.object["step"] as? Int, stoppedAt)
        XCTAssertEqual(run.temporaryFiles(), [])

        let r2 = try E2E.run(["train", "--resume", "auto", "--steps", "\(stoppedAt + 2)"] + opts)
        E2E.assertSuccess(r2, "resume after SIGTERM")
        XCTAssert(r2.stdout.contains("resuming from \(run.checkpoint(step: stoppedAt)) at step \(stoppedAt)"), r2.stdout)
        XCTAssertEqual(try run.metrics().map { $0.object["step"] as? Int }, (1...(stoppedAt + 2)).map { Optional($0) })
        XCTAssertEqual(try loadCheckpoint(run.latest).metadata["step"], "\(stoppedAt + 2)")
    }

    /// Two ranks: SIGTERM to rank 1 alone stops both at the same step (the stop flag is reduced
    /// with the losses), rank 0 writes the checkpoint, and the job exits 0.
    func testSIGTERMToOneRankStopsTheWholeJobCleanly() throws {
        let dir = try CLI.tempDir("sigterm2")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        let opts = E2E.small + ["--set", "log_every=1", "--set", "checkpoint_every=0", "--run-dir", run.path]
        var signaled = false
        let r = try E2E.mpi(np: 2, ["train", "--steps", "100000"] + opts) { p in
            guard self.waitForMetrics(run, moreThan: 1, p), let rank1 = E2E.rankProcess(1, ofMpirun: p.processIdentifier) else { return }
            kill(rank1, SIGTERM)
            signaled = true
        }
        XCTAssert(signaled, "no rank 1 process or no progress\n\(r.output)")
        E2E.assertSuccess(r, "mpirun -np 2 train stopped by SIGTERM to rank 1")
        let stoppedAt = try XCTUnwrap(run.checkpointSteps().last)
        let ck = try loadCheckpoint(run.latest)
        XCTAssertEqual(ck.metadata["step"], "\(stoppedAt)")
        XCTAssertEqual(ck.metadata["world_size"], "2")
        XCTAssertEqual(run.checkpointSteps(), [stoppedAt])
    }

    /// SIGUSR1 to mpirun (what launch/slurm.sbatch forwards before the time limit): mpirun forwards
    /// it to the ranks, which checkpoint and exit 0, and so does mpirun. (SIGTERM to mpirun also
    /// stops the ranks with a checkpoint, but Open MPI's mpirun then exits 1.)
    func testSIGUSR1ToMpirunStopsWithCheckpointAndExitZero() throws {
        let dir = try CLI.tempDir("sigusr1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        let opts = E2E.small + ["--set", "log_every=1", "--set", "checkpoint_every=0", "--run-dir", run.path]
        var signaled = false
        let r = try E2E.mpi(np: 2, ["train", "--steps", "100000"] + opts) { p in
            guard self.waitForMetrics(run, moreThan: 1, p) else { return }
            kill(p.processIdentifier, SIGUSR1)
            signaled = true
        }
        XCTAssert(signaled, r.output)
        E2E.assertSuccess(r, "mpirun -np 2 train stopped by SIGUSR1 to mpirun")
        XCTAssert(r.stdout.contains("stop requested (signal)"), r.stdout)
        let stoppedAt = try XCTUnwrap(run.checkpointSteps().last)
        XCTAssertEqual(try loadCheckpoint(run.latest).metadata["step"], "\(stoppedAt)")
    }

    /// SIGKILL rank 0 (under mpirun -np 2) or the single process, while it writes a checkpoint
    /// every step: afterwards `latest` always resolves to a complete, parseable checkpoint whose
    /// metadata matches its name, every step file is complete, and `--resume auto` carries on.
    func testKillDuringCheckpointWritesNeverLeavesTornLatest() throws {
        let dir = try CLI.tempDir("sigkill")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        let opts = E2E.small + ["--set", "checkpoint_every=1", "--set", "keep_checkpoints=2", "--set", "log_every=1",
                                "--set", "sample_every=0", "--run-dir", run.path]
        var generator = SystemRandomNumberGenerator()
        var lastStep = 0
        for round in 0..<4 {
            let np = round % 2 == 0 ? 2 : 1
            let before = Set(run.checkpointNames()), latestBefore = run.latestTarget()
            var killed = false
            let body: (Process) -> Void = { p in
                // A checkpoint write in progress (a temporary file this run created), once this run
                // has moved `latest` (so rotation and the clean-up of earlier temp files ran too).
                let writing = E2E.waitFor(p, interval: 0.002) {
                    let latest = run.latestTarget()
                    return latest != nil && latest != latestBefore
                        && run.checkpointNames().contains { $0.hasPrefix(".tmp-step_") && !before.contains($0) }
                }
                guard writing else { return }
                if round >= 2 { usleep(UInt32.random(in: 0..<150_000, using: &generator)) }   // somewhere later in the write or step
                let victim = np == 2 ? E2E.rankProcess(0, ofMpirun: p.processIdentifier) : p.processIdentifier
                guard let victim else { return }
                kill(victim, SIGKILL)
                killed = true
            }
            let args = ["train", "--resume", "auto", "--steps", "100000"] + opts
            let r = np == 2 ? try E2E.mpi(np: 2, args, whileRunning: body) : try E2E.run(args, whileRunning: body)
            XCTAssert(killed, "round \(round): no checkpoint write seen\n\(r.output)")
            XCTAssertFalse(r.timedOut, "round \(round): the job did not end after rank 0 was killed\n\(r.output)")
            XCTAssertNotEqual(r.status, 0, "round \(round)")

            // `latest` resolves to a whole checkpoint of the step its name says.
            let target = try XCTUnwrap(run.latestTarget(), "round \(round): no latest link: \(run.checkpointNames())")
            let step = try XCTUnwrap(Int(target.dropFirst(5).dropLast(12)), target)
            let ck = try loadCheckpoint(run.latest)
            XCTAssertEqual(ck.metadata["step"], "\(step)")
            XCTAssertEqual(ck["optG.step"]?.int64s, [Int64(step)])
            XCTAssertGreaterThanOrEqual(step, lastStep, "round \(round): latest went backwards")
            for s in run.checkpointSteps() {
                XCTAssertNoThrow(try SafeTensorsFile.read(path: run.checkpoint(step: s)), "round \(round): step \(s) torn")
            }
            print("round \(round) (np \(np)): killed; latest -> \(target); checkpoints/: \(run.checkpointNames())")
            lastStep = step
        }
        // Resuming from the last kill finishes normally, cleans up the killed writers' temp files,
        // and the log has each step once.
        let r = try E2E.run(["train", "--resume", "auto", "--steps", "\(lastStep + 1)"] + opts)
        E2E.assertSuccess(r, "final resume")
        XCTAssert(r.stdout.contains("at step \(lastStep)"), r.stdout)
        XCTAssertEqual(run.temporaryFiles(), [])
        XCTAssertEqual(try run.metrics().map { $0.object["step"] as? Int }, (1...(lastStep + 1)).map { Optional($0) })
        XCTAssertEqual(run.checkpointSteps(), [lastStep, lastStep + 1])
    }
}
