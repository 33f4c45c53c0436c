// End-to-end runs of `spade-dist train` (issue 5): the embedded default config, its outputs,
// determinism across --resume, and checkpoints moving between world sizes.

import Foundation
import SafeTensors
import SpadeTestSupport
import XCTest

final class TrainingRunTests: XCTestCase {
    /// Runs shared between tests of this class: world size -> (temp dir, stdout); removed in tearDown().
    nonisolated(unsafe) private static var shared: [Int: (dir: String, stdout: String)] = [:]
    private static let lock = NSLock()

    override class func tearDown() {
        for run in shared.values { try? FileManager.default.removeItem(atPath: run.dir) }
        shared = [:]
        super.tearDown()
    }

    /// `spade-dist train --steps 20` with nothing else (the embedded default: tiny model, synthetic
    /// data), alone (np 1) or under `mpirun -np 2`; run once per world size for all tests here.
    func defaultRun(np: Int = 1) throws -> (run: RunDirectory, stdout: String) {
        Self.lock.lock(); defer { Self.lock.unlock() }
        if let s = Self.shared[np] { return (RunDirectory(path: s.dir + "/runs/tiny"), s.stdout) }
        let dir = try CLI.tempDir("default-np\(np)")
        Self.shared[np] = (dir, "")
        // No --run-dir: the default runs/<name>, relative to the working directory.
        let args = ["train", "--steps", "20"]
        let r = np == 1 ? try E2E.run(args, in: dir) : try E2E.mpi(np: np, args, in: dir)
        E2E.assertSuccess(r, "spade-dist train --steps 20 (np \(np))")
        Self.shared[np] = (dir, r.stdout)
        return (RunDirectory(path: dir + "/runs/tiny"), r.stdout)
    }

    // MARK: outputs

    func testDefaultTrainOneRankWritesParseableOutputs() throws {
        let (run, out) = try defaultRun()
        try checkOutputs(run, steps: 20, worldSize: 1, loggedSteps: [1, 10, 20])
        // Start-up lines come before the progress lines (stdout is a file here).
        let model = try XCTUnwrap(out.range(of: "spade-dist: BLAS kernels"), out)
        let firstStep = try XCTUnwrap(out.range(of: "step 1/20"), out)
        XCTAssert(model.lowerBound < firstStep.lowerBound, "start-up line after the progress:\n\(out)")
        XCTAssert(out.contains("spade-dist: done at step 20; run directory runs/tiny"), out)
        XCTAssertFalse(out.contains("\u{1B}["), "terminal escapes in a plain log:\n\(out)")
    }

    func testDefaultTrainTwoRanksWritesParseableOutputs() throws {
        let (run, out) = try defaultRun(np: 2)
        try checkOutputs(run, steps: 20, worldSize: 2, loggedSteps: [1, 10, 20])
        XCTAssertEqual(out.components(separatedBy: "spade-dist: done at step 20").count - 1, 1, "only rank 0 reports:\n\(out)")
        // mpirun gives ranks a pseudo-terminal, but its own output is a file: plain progress lines.
        XCTAssertFalse(out.contains("\u{1B}["), "terminal escapes in a plain log:\n\(out)")
        XCTAssert(out.contains("] step 20/20 (100%)"), out)
        let model = try XCTUnwrap(out.range(of: "spade-dist: BLAS kernels"), out)
        let firstStep = try XCTUnwrap(out.range(of: "step 1/20"), out)
        XCTAssert(model.lowerBound < firstStep.lowerBound, "start-up line after the progress:\n\(out)")
    }

    /// The np=2 checkpoint continues under one rank: 4 more steps, the sampler continuing at
    /// global sample 80 of epoch 0 (2 ranks x batch 2 x 20 steps), now 2 per step.
    func testCheckpointOfTwoRanksResumesUnderOneRank() throws {
        let (np2, _) = try defaultRun(np: 2)
        let dir = try CLI.tempDir("np2-to-np1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        try FileManager.default.copyItem(atPath: np2.path, toPath: run.path)
        let r = try E2E.run(["train", "--resume", "auto", "--steps", "24", "--run-dir", run.path])
        E2E.assertSuccess(r, "resume of the np=2 run under one rank")
        XCTAssert(r.stdout.contains("resuming from \(run.checkpoint(step: 20)) at step 20"), r.stdout)
        XCTAssert(r.stdout.contains("world size 2 -> 1"), r.stdout)
        let ck = try loadCheckpoint(run.latest)
        XCTAssertEqual(ck.metadata["step"], "24")
        XCTAssertEqual(ck.metadata["world_size"], "1")
        XCTAssertEqual(ck.metadata["data_position"], "0:88")
        XCTAssertEqual(ck["optG.step"]?.int64s, [24])
        let steps = try run.metrics().map { ($0.object["step"] as? Int) ?? -1 }
        XCTAssertEqual(steps, [1, 10, 20, 24])
        let starts = try run.eventFiles().flatMap { try EventFile.events(path: $0) }.filter { $0.sessionStatus == 1 }
        XCTAssertEqual(starts.map(\.step), [21], "the resumed run's event file starts with SessionLog START at step 21")
    }

    /// Everything DESIGN §6/§9 promises after a completed run of `steps` steps.
    func checkOutputs(_ run: RunDirectory, steps: Int, worldSize: Int, loggedSteps: [Int],
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let fm = FileManager.default
        let globalBatch = 2 * worldSize

        // config.yaml: the effective config, with the run's length.
        let yaml = try String(contentsOfFile: run.path + "/config.yaml", encoding: .utf8)
        XCTAssert(yaml.contains("\nsteps: \(steps)\n") && yaml.contains("\nlabel_nc: 8\n"), yaml, file: file, line: line)

        // Checkpoint: latest -> step file, complete, DESIGN §9 names and metadata.
        XCTAssertEqual(run.latestTarget(), (run.checkpoint(step: steps) as NSString).lastPathComponent, file: file, line: line)
        XCTAssertEqual(run.temporaryFiles(), [], "unfinished writes left behind", file: file, line: line)
        let ck = try loadCheckpoint(run.latest)
        let m = ck.metadata
        XCTAssertEqual(m["step"], "\(steps)", file: file, line: line)
        XCTAssertEqual(m["world_size"], "\(worldSize)", file: file, line: line)
        XCTAssertEqual(m["seed"], "0", file: file, line: line)
        XCTAssertEqual(m["data_position"], "0:\(steps * globalBatch)", file: file, line: line)   // 128 scenes: still epoch 0
        XCTAssertEqual(m["epoch"], "0", file: file, line: line)
        XCTAssertEqual(m["config"].map { $0.contains("\nsteps: \(steps)\n") }, true, file: file, line: line)
        for opt in ["optG", "optD"] {
            let t = try XCTUnwrap(ck["\(opt).step"], file: file, line: line)
            XCTAssertEqual(t.dtype, .i64, file: file, line: line)
            XCTAssertEqual(t.shape, [], file: file, line: line)
            XCTAssertEqual(t.int64s, [Int64(steps)], file: file, line: line)
        }
        let counter = try XCTUnwrap(ck["netG.head_0.norm_0.param_free_norm.num_batches_tracked"], file: file, line: line)
        XCTAssertEqual(counter.dtype, .i64, file: file, line: line)
        XCTAssertEqual(counter.int64s, [Int64(steps)], file: file, line: line)
        XCTAssertEqual(ck["netG.fc.weight"]?.shape, [256, 8, 3, 3], file: file, line: line)   // 16*ngf, label_nc
        XCTAssertNotNil(ck["optG.fc.weight.exp_avg_sq"], file: file, line: line)
        XCTAssertNotNil(ck["netD.discriminator_1.model0.0.weight"], file: file, line: line)
        XCTAssertNotNil(ck["netG.up_3.conv_0.weight_orig"], file: file, line: line)

        // Sample grid: label | generated | real, one row per rank-0 sample (batch 2 per rank).
        let grid = try readRGB(run.sample(step: steps))
        XCTAssertEqual(grid.width, 3 * 64, file: file, line: line)
        XCTAssertEqual(grid.height, 2 * 64, file: file, line: line)
        XCTAssertGreaterThan(Set(grid.pixels).count, 16, "a flat sample image", file: file, line: line)

        // index.html refers to every sample grid, and every referenced file exists.
        let html = try String(contentsOfFile: run.path + "/index.html", encoding: .utf8)
        let samples = try fm.contentsOfDirectory(atPath: run.path + "/samples").filter { $0.hasSuffix(".png") }
        XCTAssertFalse(samples.isEmpty, file: file, line: line)
        for s in samples { XCTAssert(html.contains("src=\"samples/\(s)\""), "index.html misses \(s)", file: file, line: line) }
        var rest = html[...]
        while let r = rest.range(of: "src=\"") {
            let ref = rest[r.upperBound...].prefix { $0 != "\"" }
            XCTAssert(fm.fileExists(atPath: run.path + "/" + ref), "index.html refers to missing \(ref)", file: file, line: line)
            rest = rest[r.upperBound...]
        }
        XCTAssert(html.contains("<svg"), "no loss curves", file: file, line: line)

        // metrics.jsonl: DESIGN §9 keys, one record per logged step, consistent sums.
        let records = try run.metrics()
        XCTAssertEqual(records.map { $0.object["step"] as? Int }, loggedSteps.map { Optional($0) }, file: file, line: line)
        for (obj, text) in records {
            for key in requiredMetricKeys { XCTAssertNotNil(obj[key], "\(key) missing: \(text)", file: file, line: line) }
            let v = { (k: String) in metricFloat(obj[k]) ?? .nan }
            for key in lossKeys { XCTAssert(v(key).isFinite, "\(key) not finite: \(text)", file: file, line: line) }
            XCTAssertEqual(v("loss_D"), v("D_Fake") + v("D_real"), accuracy: 1e-4 * max(1, abs(v("loss_D"))), file: file, line: line)
            XCTAssertEqual(v("loss_G"), v("G_GAN") + v("G_GANFeat"), accuracy: 1e-4 * max(1, abs(v("loss_G"))), file: file, line: line)
            XCTAssertEqual(v("lr_G"), 0.0001, file: file, line: line)   // TTUR: lr / 2
            XCTAssertEqual(v("lr_D"), 0.0004, file: file, line: line)   // TTUR: lr * 2
            XCTAssertGreaterThan(v("images_per_s"), 0, file: file, line: line)
        }

        // TensorBoard: one event file, valid TFRecord framing and CRCs, scalars equal (as float32)
        // to metrics.jsonl, the sample grid as a PNG image event.
        let eventFiles = run.eventFiles()
        XCTAssertEqual(eventFiles.count, 1, file: file, line: line)
        let events = try EventFile.events(path: try XCTUnwrap(eventFiles.first, file: file, line: line))
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2", file: file, line: line)
        let scalarEvents = events.filter { !$0.scalars.isEmpty }
        XCTAssertEqual(scalarEvents.map(\.step), loggedSteps.map(Int64.init), file: file, line: line)
        for (event, (obj, text)) in zip(scalarEvents, records) {
            let tags = Set(event.scalars.map(\.tag))
            XCTAssert(Set(lossKeys).isSubset(of: tags), "scalar tags \(tags)", file: file, line: line)
            for (tag, value) in event.scalars {
                guard let token = rawToken(tag, in: text), let fromJSON = Float(token) else {
                    XCTFail("\(tag) at step \(event.step) not in metrics.jsonl: \(text)", file: file, line: line); continue
                }
                // The JSON decimal reads back as exactly the float32 TensorBoard got.
                XCTAssertEqual(fromJSON.bitPattern, value.bitPattern, "\(tag) step \(event.step): \(token) vs \(value)",
                               file: file, line: line)
            }
            _ = obj
        }
        let imageEvents = events.filter { !$0.images.isEmpty }
        XCTAssertEqual(imageEvents.map(\.step), [Int64(steps)], file: file, line: line)
        if let image = imageEvents.first?.images.first {
            XCTAssertEqual(image.tag, "samples", file: file, line: line)
            XCTAssertEqual([image.width, image.height], [grid.width, grid.height], file: file, line: line)
            let onDisk = try XCTUnwrap(fm.contents(atPath: run.sample(step: steps)), file: file, line: line)
            XCTAssertEqual(image.png, Array(onDisk), "the event's PNG is the sample grid", file: file, line: line)
        }
    }

    // MARK: inspect and eval

    func testInspectShowsFormatStepEpochWorldSizeConfigAndTensorCounts() throws {
        let (run, _) = try defaultRun()
        let r = try E2E.run(["inspect", run.latest])
        E2E.assertSuccess(r, "inspect")
        let out = r.stdout
        for line in ["format:         spade-dist/1", "step:           20", "epoch:          0", "data_position:  0:40",
                     "world_size:     1", "seed:           0", "tensors:        578 (",
                     "netG: 234 tensors", "netD: 26 tensors", "optG: 289 tensors", "optD: 29 tensors",
                     "config:", "    label_nc: 8", "    ngf: 16", "    steps: 20"] {
            XCTAssert(out.contains(line), "inspect output lacks '\(line)':\n\(out)")
        }
        let listed = try E2E.run(["inspect", "--tensors", run.latest])
        E2E.assertSuccess(listed, "inspect --tensors")
        XCTAssert(listed.stdout.contains("    optG.step I64 []"), listed.stdout)
        XCTAssert(listed.stdout.contains("    netG.fc.weight F32 [256, 8, 3, 3]"), listed.stdout)
    }

    /// `spade-dist eval` on the default model reports a pixel accuracy (no claim on its value here).
    func testEvalReportsPixelAccuracy() throws {
        let (run, _) = try defaultRun()
        let r = try E2E.run(["eval", "--checkpoint", run.latest, "--count", "4"])
        E2E.assertSuccess(r, "eval")
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("pixel accuracy ") }, r.stdout)
        let value = try XCTUnwrap(Double(line.split(separator: " ")[2]), String(line))
        XCTAssert((0...1).contains(value), String(line))
        XCTAssert(line.hasSuffix("on 4 held-out synthetic scenes"), String(line))
    }

    // MARK: determinism and resume

    /// 20 straight steps == 10 steps, then `--resume auto` to 20: the same losses and the same
    /// checkpoint tensors, bit for bit (and the same data position, epoch and config).
    func testResumedRunIsBitwiseIdenticalToStraightRun() throws {
        try checkResumeIsBitwiseIdentical(np: 1)
    }

    func testResumedRunIsBitwiseIdenticalToStraightRunTwoRanks() throws {
        try checkResumeIsBitwiseIdentical(np: 2)
    }

    func checkResumeIsBitwiseIdentical(np: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let (straight, _) = try defaultRun(np: np)
        let dir = try CLI.tempDir("resume-np\(np)")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        func train(_ args: [String]) throws -> ProcessResult {
            np == 1 ? try E2E.run(["train"] + args) : try E2E.mpi(np: np, ["train"] + args)
        }
        E2E.assertSuccess(try train(["--steps", "10", "--run-dir", run.path]), "first 10 steps", file: file, line: line)
        let r = try train(["--resume", "auto", "--steps", "20", "--run-dir", run.path])
        E2E.assertSuccess(r, "resume to 20", file: file, line: line)
        XCTAssert(r.stdout.contains("resuming from \(run.checkpoint(step: 10)) at step 10"), r.stdout, file: file, line: line)
        XCTAssertFalse(r.stdout.contains("config differs"), r.stdout, file: file, line: line)

        let a = try straight.metrics(), b = try run.metrics()
        XCTAssertEqual(b.map { $0.object["step"] as? Int }, [1, 10, 20], "one record per logged step, none twice", file: file, line: line)
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (ra, rb) in zip(a, b) {
            for key in ["step", "epoch"] + lossKeys {
                XCTAssertEqual(rawToken(key, in: ra.line), rawToken(key, in: rb.line), "\(key) at step \(ra.object["step"] ?? "?")",
                               file: file, line: line)
            }
        }
        let ca = try loadCheckpoint(straight.latest), cb = try loadCheckpoint(run.latest)
        XCTAssertEqual(ca.tensors.count, cb.tensors.count, file: file, line: line)
        XCTAssertEqual(ca.sameTensors(as: cb), [], "tensors differing after resume", file: file, line: line)
        for key in ["step", "epoch", "data_position", "world_size", "seed", "skipped_steps"] {
            XCTAssertEqual(ca.metadata[key], cb.metadata[key], key, file: file, line: line)
        }
        func withoutRunDir(_ s: String?) -> String? { s?.split(separator: "\n").filter { !$0.hasPrefix("run_dir:") }.joined(separator: "\n") }
        XCTAssertEqual(withoutRunDir(ca.metadata["config"]), withoutRunDir(cb.metadata["config"]), file: file, line: line)
        XCTAssertEqual(run.checkpointSteps(), [10, 20], file: file, line: line)
    }

    /// A run that died after logging past its last checkpoint: the resumed run redoes those steps,
    /// metrics.jsonl keeps one record per step (the redone values equal the first ones: the run
    /// is deterministic), stale sample grids are removed, TensorBoard gets a SessionLog START.
    func testResumeRedoesStepsAfterTheCheckpointAndTruncatesLogs() throws {
        let dir = try CLI.tempDir("rewind")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = RunDirectory(path: dir + "/run")
        let opts = E2E.small + ["--set", "log_every=1", "--set", "checkpoint_every=4", "--set", "sample_every=3",
                                "--run-dir", run.path]
        E2E.assertSuccess(try E2E.run(["train", "--steps", "6"] + opts), "first run")
        let first = try run.metrics()
        XCTAssertEqual(first.map { $0.object["step"] as? Int }, [1, 2, 3, 4, 5, 6])
        // As if the run had been killed after logging step 6 but before its checkpoint.
        try FileManager.default.removeItem(atPath: run.checkpoint(step: 6))
        XCTAssert(FileManager.default.fileExists(atPath: run.sample(step: 6)))

        let r = try E2E.run(["train", "--resume", "auto", "--steps", "7"] + opts)
        E2E.assertSuccess(r, "resume")
        XCTAssert(r.stdout.contains("latest.safetensors -> step_00000006.safetensors is missing or incomplete"), r.stdout)
        XCTAssert(r.stdout.contains("resuming from \(run.checkpoint(step: 4)) at step 4"), r.stdout)
        let second = try run.metrics()
        XCTAssertEqual(second.map { $0.object["step"] as? Int }, [1, 2, 3, 4, 5, 6, 7])
        for (x, y) in zip(first, second) {
            for key in lossKeys { XCTAssertEqual(rawToken(key, in: x.line), rawToken(key, in: y.line), "\(key) \(x.line)") }
        }
        // Samples: 3 kept, 6 removed at the resume and rewritten by the redone step 6, 7 = end.
        let samples = try FileManager.default.contentsOfDirectory(atPath: run.path + "/samples").sorted()
        XCTAssertEqual(samples, ["step_00000003.png", "step_00000006.png", "step_00000007.png"])
        let files = try run.eventFiles().map { try EventFile.events(path: $0) }
        XCTAssertEqual(files.count, 2)
        let resumed = try XCTUnwrap(files.first { $0.contains { $0.sessionStatus != nil } }, "no SessionLog in any event file")
        XCTAssertEqual(resumed.first?.fileVersion, "brain.Event:2")
        XCTAssertEqual(resumed.dropFirst().first?.sessionStatus, 1)
        XCTAssertEqual(resumed.dropFirst().first?.step, 5)
        XCTAssertEqual(resumed.filter { !$0.scalars.isEmpty }.map(\.step), [5, 6, 7])
    }
}
