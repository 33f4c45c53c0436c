// Bad input through the command line (issue 5, DESIGN §3/§9): every user error exits 2 with one
// line naming the file, key or value, no Swift backtrace, and nothing half-written.

import Foundation
import SafeTensors
import SpadeData
import SpadeTestSupport
import XCTest

final class BadInputCLITests: XCTestCase {
    /// This class's scratch folder, with a real checkpoint of the small model
    /// (`good/checkpoints/step_00000001.safetensors`).
    static let scratch = SharedScratch(tag: "badinput") { d in
        let r = try E2E.run(["train", "--steps", "1", "--run-dir", d + "/good"] + E2E.small)
        E2E.assertSuccess(r, "making a checkpoint")
    }

    override class func tearDown() {
        scratch.remove()
        super.tearDown()
    }

    func work() throws -> String { try Self.scratch.path() }

    var goodCheckpoint: String { get throws { try work() + "/good/checkpoints/step_00000001.safetensors" } }
    var tinyData: String { Fixtures.directory + "/tiny_data" }

    /// Exit code 2, `lines` lines on stderr (the first starting "spade-dist: ") containing every
    /// string of `mentions`, nothing that looks like a crash report.
    func assertUserError(_ r: ProcessResult, mentions: [String], lines: Int = 1,
                         file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "timed out\n\(r.output)", file: file, line: line)
        XCTAssertEqual(r.status, 2, "exit code\n\(r.output)", file: file, line: line)
        XCTAssertFalse(r.signaled, file: file, line: line)
        let errLines = r.stderr.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        XCTAssertEqual(errLines.count, lines, "stderr:\n\(r.stderr)", file: file, line: line)
        XCTAssert(errLines.first?.hasPrefix("spade-dist: ") ?? false, "stderr:\n\(r.stderr)", file: file, line: line)
        for m in mentions { XCTAssert(r.stderr.contains(m), "stderr does not mention \(m):\n\(r.stderr)", file: file, line: line) }
        assertNoCrashReport(r, file: file, line: line)
    }

    func assertNoCrashReport(_ r: ProcessResult, file: StaticString = #filePath, line: UInt = #line) {
        for marker in ["Fatal error", "Backtrace", "Program crashed", "Stack dump", "Thread 0", "Illegal instruction", "💣"] {
            XCTAssertFalse(r.output.contains(marker), "crash report (\(marker)):\n\(r.output)", file: file, line: line)
        }
    }

    /// `spade-dist train ... --run-dir <fresh>`; asserts the run directory was not created.
    func train(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
        let runDir = try work() + "/run-\(UUID().uuidString)"
        let r = try E2E.run(["train", "--steps", "2", "--run-dir", runDir] + args)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runDir), "a failed start wrote \(runDir)", file: file, line: line)
        return r
    }

    func writeFile(_ name: String, _ text: String) throws -> String {
        let path = try work() + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: config

    func testUnknownConfigKey() throws {
        let cfg = try writeFile("unknown.yaml", "ngf: 8\nngff: 16\n")
        assertUserError(try train(["--config", cfg]), mentions: ["unknown.yaml:2", "unknown key 'ngff'", "did you mean 'ngf'"])
        assertUserError(try train(["--set", "lambda_fet=5"]), mentions: ["--set", "'lambda_fet'", "lambda_feat"])
    }

    func testWrongType() throws {
        let cfg = try writeFile("type.yaml", "batchSize: two\n")
        assertUserError(try train(["--config", cfg]), mentions: ["type.yaml:1", "batchSize", "'two'", "integer"])
        assertUserError(try train(["--set", "no_flip=maybe"]), mentions: ["no_flip", "'maybe'"])
        let list = try writeFile("list.yaml", "lr: [0.1, 0.2]\n")
        assertUserError(try train(["--config", list]), mentions: ["list.yaml:1", "'lr'", "list"])
    }

    func testOutOfRangeValue() throws {
        assertUserError(try train(["--set", "lr=-0.1"]), mentions: ["--set", "'lr'", "-0.1", "out of range"])
        let cfg = try writeFile("range.yaml", "label_nc: 300\n")
        assertUserError(try train(["--config", cfg]), mentions: ["range.yaml:1", "label_nc", "300"])
        assertUserError(try train(["--set", "norm_G=spectralspadeinstance3x3"]), mentions: ["norm_G", "spectralspadeinstance3x3"])
    }

    func testCropSizeNotMultipleOf32() throws {
        assertUserError(try train(["--set", "crop_size=100", "--set", "load_size=128"]),
                        mentions: ["crop_size", "100", "multiple of 32"])
        assertUserError(try train(["--set", "num_upsampling_layers=most"]), mentions: ["crop_size", "64", "multiple of 128"])
    }

    func testMissingConfigFileAndMissingDataDirectory() throws {
        assertUserError(try train(["--config", "/nonexistent/x.yaml"]), mentions: ["/nonexistent/x.yaml"])
        let missing = try work() + "/no-such-labels"
        assertUserError(try train(["--set", "dataset_mode=custom", "--set", "label_dir=\(missing)",
                                   "--set", "image_dir=\(tinyData)/images", "--set", "label_nc=5", "--set", "load_size=64"]),
                        mentions: [missing, "label_dir"])
    }

    func testLabelIdNotBelowLabelNC() throws {
        let data = try work() + "/badlabels"
        let fm = FileManager.default
        try? fm.removeItem(atPath: data)
        try fm.copyItem(atPath: tinyData, toPath: data)
        var pixels = [UInt8](repeating: 1, count: 64 * 64)
        pixels[64 * 10 + 20] = 9
        try fm.removeItem(atPath: data + "/labels/0002.png")
        try writePNG(path: data + "/labels/0002.png", width: 64, height: 64, channels: 1, pixels: pixels)
        let custom = ["--set", "dataset_mode=custom", "--set", "label_dir=\(data)/labels", "--set", "image_dir=\(data)/images",
                      "--set", "label_nc=5", "--set", "load_size=64"]
        assertUserError(try train(custom), mentions: ["\(data)/labels/0002.png", "class id 9", "label_nc 5"])
        // The same folder through generate (the checkpoint's label_nc is 8): an error naming the
        // file, before any image is written.
        let out = try work() + "/gen-badlabel"
        let r = try E2E.run(["generate", "--checkpoint", try goodCheckpoint, "--labels", data + "/labels", "--out", out])
        assertUserError(r, mentions: ["\(data)/labels/0002.png", "class id 9", "label_nc 8"])
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? [], [])
    }

    // MARK: checkpoints

    /// Truncated and garbage-header copies of a real checkpoint, for every command that reads one.
    func testDamagedCheckpointForResumeInitInspectGenerate() throws {
        let good = try Array(XCTUnwrap(FileManager.default.contents(atPath: try goodCheckpoint)))
        let dir = try work()
        var damaged: [String: [UInt8]] = [:]
        damaged["truncated"] = Array(good[..<(good.count * 3 / 5)])
        var badHeader = good
        badHeader.replaceSubrange(0..<8, with: [0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0])   // header length beyond the file
        damaged["header-length"] = badHeader
        var badJSON = good
        for i in 8..<40 { badJSON[i] = UInt8(ascii: "#") }
        damaged["header-json"] = badJSON
        damaged["empty"] = []
        for (name, bytes) in damaged.sorted(by: { $0.key < $1.key }) {
            let path = "\(dir)/\(name).safetensors"
            XCTAssert(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
            assertUserError(try train(["--resume", path] + E2E.small), mentions: [path])
            assertUserError(try train(["--init", path] + E2E.small), mentions: [path])
            assertUserError(try E2E.run(["inspect", path]), mentions: [path])
            let out = "\(dir)/gen-\(name)"
            assertUserError(try E2E.run(["generate", "--checkpoint", path, "--labels", tinyData + "/labels", "--out", out]),
                            mentions: [path])
            let written = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            XCTAssertEqual(written, [], "generate wrote files from a damaged checkpoint")
        }
    }

    /// `--resume auto` in a run directory whose only checkpoint is damaged: an error naming it, not a
    /// silent fresh start; nothing in the run directory changes.
    func testResumeAutoWithOnlyADamagedCheckpoint() throws {
        let run = RunDirectory(path: try work() + "/torn-run")
        try FileManager.default.createDirectory(atPath: run.checkpoints, withIntermediateDirectories: true)
        let good = try Array(XCTUnwrap(FileManager.default.contents(atPath: try goodCheckpoint)))
        let path = run.checkpoint(step: 1)
        XCTAssert(FileManager.default.createFile(atPath: path, contents: Data(good[..<(good.count / 2)])))
        try FileManager.default.createSymbolicLink(atPath: run.latest, withDestinationPath: "step_00000001.safetensors")
        let r = try E2E.run(["train", "--resume", "auto", "--steps", "2", "--run-dir", run.path] + E2E.small)
        assertUserError(r, mentions: [path, "no complete checkpoint"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path).sorted(), ["checkpoints"])
        XCTAssertEqual(run.checkpointNames(), ["latest.safetensors", "step_00000001.safetensors"])
    }

    func testInitOrResumeWithWrongShapesOrFormat() throws {
        // tiny_init: the fixtures' model (label_nc 5, ngf 8) against the default model (label_nc 8, ngf 16).
        let tinyInit = Fixtures.directory + "/tiny_init.safetensors"
        assertUserError(try train(["--init", tinyInit]), mentions: [tinyInit, "netG.", "the model needs"])
        // A checkpoint of the small model into the default one.
        let ck = try goodCheckpoint
        assertUserError(try train(["--init", ck]), mentions: [ck, "netG.", "the model needs"])
        assertUserError(try train(["--resume", ck]), mentions: [ck, "the model needs"])
        // Not a spade-dist checkpoint: --resume says to use --init.
        assertUserError(try train(["--resume", tinyInit, "--set", "label_nc=5", "--set", "synthetic_classes=5",
                                   "--set", "ngf=8", "--set", "ndf=8", "--set", "spade_hidden=16"]),
                        mentions: [tinyInit, "not a spade-dist checkpoint", "--init"])
        assertUserError(try train(["--resume", "/nonexistent.safetensors"]), mentions: ["/nonexistent.safetensors"])
        // generate with a config that does not describe the checkpoint's generator.
        let out = try work() + "/gen-shapes"
        assertUserError(try E2E.run(["generate", "--checkpoint", ck, "--labels", tinyData + "/labels", "--out", out,
                                     "--set", "ngf=16"]), mentions: [ck, "the model needs"])
    }

    // MARK: command line

    func testUsageErrorsExitTwo() throws {
        let r = try E2E.run(["train", "--no-such-option"])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssert(r.stderr.contains("--no-such-option"), r.stderr)
        assertNoCrashReport(r)
        let both = try E2E.run(["train", "--resume", "auto", "--init", "x.safetensors"])
        XCTAssertEqual(both.status, 2, both.output)
        XCTAssert(both.stderr.contains("--resume and --init"), both.stderr)
        let noSuchLabels = try E2E.run(["generate", "--checkpoint", try goodCheckpoint, "--labels", "/nonexistent-labels",
                                        "--out", try work() + "/gen-nolabels"])
        assertUserError(noSuchLabels, mentions: ["/nonexistent-labels"])
        assertUserError(try E2E.run(["inspect", "/nonexistent.safetensors"]),
                        mentions: ["/nonexistent.safetensors", "no such checkpoint file"])
        assertUserError(try E2E.run(["eval", "--checkpoint", "/nonexistent.safetensors"]),
                        mentions: ["/nonexistent.safetensors", "no such checkpoint file"])
        assertUserError(try E2E.run(["generate", "--checkpoint", "/nonexistent.safetensors", "--labels", tinyData + "/labels",
                                     "--out", try work() + "/gen-nockpt"]),
                        mentions: ["/nonexistent.safetensors", "no such checkpoint file"])
        XCTAssertEqual(try E2E.run(["--help"]).status, 0)
    }

    /// Under mpirun every rank exits 2 or the job is aborted with code 2 (DESIGN §9); the message
    /// is printed once.
    func testUserErrorsUnderMpirunExitTwo() throws {
        let cfg = try writeFile("mpi-unknown.yaml", "ngff: 16\n")
        let r = try E2E.mpi(np: 2, ["train", "--config", cfg, "--steps", "2", "--run-dir", try work() + "/mpi-run"])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertEqual(r.stderr.components(separatedBy: "unknown key 'ngff'").count - 1, 1, r.stderr)
        assertNoCrashReport(r)
        // An error found on rank 0 only (its checkpoint is damaged): MPI_Abort with code 2.
        let path = try work() + "/mpi-damaged.safetensors"
        XCTAssert(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        let r2 = try E2E.mpi(np: 2, ["train", "--resume", path, "--steps", "2", "--run-dir", try work() + "/mpi-run2"] + E2E.small)
        XCTAssertEqual(r2.status, 2, r2.output)
        XCTAssertEqual(r2.stderr.components(separatedBy: path).count - 1, 1, r2.stderr)
        assertNoCrashReport(r2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: try work() + "/mpi-run2"))
    }
}
