import Foundation
import SafeTensors
import SpadeTrain
import XCTest

/// A fresh empty directory under /tmp, removed by the caller.
func makeTempDir(_ tag: String) throws -> String {
    let path = NSTemporaryDirectory() + "/spade-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A checkpoint-like file whose tensor holds `step` everywhere, so a reader can tell it is whole.
func fakeCheckpoint(step: Int, floats: Int) -> SafeTensorsFile {
    var f = SafeTensorsFile()
    f.metadata = ["format": "spade-dist/1", "step": String(step)]
    f["netG.fc.weight"] = TensorRecord(shape: [floats], floats: [Float](repeating: Float(step), count: floats))
    f["optG.step"] = TensorRecord(shape: [], int64s: [Int64(step)])
    return f
}

/// Asserts `path` parses fully and is the checkpoint of the step its name says.
func assertWholeCheckpoint(_ path: String, file: StaticString = #filePath, line: UInt = #line) {
    do {
        let f = try SafeTensorsFile.read(path: path)
        let step = CheckpointDirectory.step(ofFileName: (path as NSString).lastPathComponent)
        XCTAssertEqual(f.metadata["step"], step.map(String.init), path, file: file, line: line)
        let values = f["netG.fc.weight"]!.floats
        XCTAssert(values.allSatisfy { $0 == Float(step ?? -1) }, "torn contents in \(path)", file: file, line: line)
    } catch {
        XCTFail("\(path) does not parse: \(error)", file: file, line: line)
    }
}

final class AtomicFileTests: XCTestCase {
    func testWriteReplacesWholeFileAndLeavesNoTemporaries() throws {
        let dir = try makeTempDir("atomic")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/a.txt"
        try AtomicFile.write("first", to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "first")
        try AtomicFile.write(Array("second, longer".utf8), to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "second, longer")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.txt"])
    }

    func testWriteIntoMissingDirectoryFailsNamingThePath() {
        XCTAssertThrowsError(try AtomicFile.write("x", to: "/nonexistent-dir-\(getpid())/f")) { error in
            // Named by the file the caller asked for (the temporary file is an implementation detail).
            XCTAssert("\(error)".hasPrefix("/nonexistent-dir-\(getpid())/f: "), "\(error)")
            XCTAssert("\(error)".hasSuffix("No such file or directory"), "\(error)")
        }
    }

    func testSymlinkIsReplacedAtomically() throws {
        let dir = try makeTempDir("link")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try AtomicFile.symlink("one", at: dir + "/l")
        try AtomicFile.symlink("two", at: dir + "/l")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/l"), "two")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["l"])
    }
}

final class CheckpointTests: XCTestCase {
    func testNamesAndStepParsing() {
        XCTAssertEqual(CheckpointDirectory.fileName(forStep: 500), "step_00000500.safetensors")
        XCTAssertEqual(CheckpointDirectory.fileName(forStep: 123456789), "step_123456789.safetensors")
        XCTAssertEqual(CheckpointDirectory.step(ofFileName: "step_00000500.safetensors"), 500)
        XCTAssertNil(CheckpointDirectory.step(ofFileName: "step_500.safetensors"))
        XCTAssertNil(CheckpointDirectory.step(ofFileName: "latest.safetensors"))
        XCTAssertNil(CheckpointDirectory.step(ofFileName: ".tmp-step_00000500.safetensors.12.34"))
        XCTAssertEqual(CheckpointDirectory(runDirectory: "runs/tiny", keep: 3).path(forStep: 7), "runs/tiny/checkpoints/step_00000007.safetensors")
    }

    func testSaveLatestAndRotation() throws {
        let run = try makeTempDir("ckpt")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let ckpts = CheckpointDirectory(runDirectory: run, keep: 2)
        XCTAssertNil(ckpts.latestCheckpoint())
        for step in [100, 200, 300, 400] { try ckpts.save(fakeCheckpoint(step: step, floats: 16), step: step) }
        XCTAssertEqual(ckpts.stepFiles().map(\.step), [300, 400])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: ckpts.latestPath), "step_00000400.safetensors")
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 400))
        assertWholeCheckpoint(ckpts.latestCheckpoint()!)
        XCTAssertEqual(try SafeTensorsFile.read(path: ckpts.latestPath).metadata["step"], "400")
        // An older step saved later (e.g. a re-run) becomes latest and is never rotated away.
        try ckpts.save(fakeCheckpoint(step: 50, floats: 16), step: 50)
        XCTAssertEqual(ckpts.stepFiles().map(\.step), [50, 300, 400])
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 50))
        // keep 0 keeps everything.
        let all = CheckpointDirectory(runDirectory: run, keep: 0)
        try all.save(fakeCheckpoint(step: 500, floats: 16), step: 500)
        try all.save(fakeCheckpoint(step: 600, floats: 16), step: 600)
        XCTAssertEqual(all.stepFiles().map(\.step), [50, 300, 400, 500, 600])
    }

    func testFallsBackWhenLatestIsDanglingOrTorn() throws {
        let run = try makeTempDir("fallback")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let ckpts = CheckpointDirectory(runDirectory: run, keep: 0)
        try ckpts.save(fakeCheckpoint(step: 1, floats: 64), step: 1)
        try ckpts.save(fakeCheckpoint(step: 2, floats: 64), step: 2)
        // A torn step 3 (as a non-atomic copy would leave) and latest pointing at it.
        let whole = fakeCheckpoint(step: 3, floats: 64).serialized()
        _ = FileManager.default.createFile(atPath: ckpts.path(forStep: 3), contents: Data(whole.prefix(whole.count - 10)))
        XCTAssertFalse(CheckpointDirectory.isComplete(path: ckpts.path(forStep: 3)))
        XCTAssertThrowsError(try SafeTensorsFile.read(path: ckpts.path(forStep: 3)))
        try AtomicFile.symlink("step_00000003.safetensors", at: ckpts.latestPath)
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 2))
        // Dangling latest.
        try AtomicFile.symlink("step_00000009.safetensors", at: ckpts.latestPath)
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 2))
        // Garbage header.
        _ = FileManager.default.createFile(atPath: ckpts.path(forStep: 4), contents: Data([1, 2, 3]))
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 2))
        // A leftover temporary from a killed writer is ignored, then cleaned up by the next save.
        _ = FileManager.default.createFile(atPath: ckpts.directory + "/.tmp-step_00000005.safetensors.999999.1", contents: Data(whole.prefix(100)))
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 2))
        try ckpts.save(fakeCheckpoint(step: 6, floats: 64), step: 6)
        XCTAssertFalse(FileManager.default.fileExists(atPath: ckpts.directory + "/.tmp-step_00000005.safetensors.999999.1"))
        XCTAssertEqual(ckpts.latestCheckpoint(), ckpts.path(forStep: 6))
        XCTAssert(CheckpointDirectory.isComplete(path: ckpts.path(forStep: 6)))
    }

    /// Kills a child process that saves ~4 MB checkpoints in a loop with SIGKILL at random
    /// moments; after every kill, `latest` must resolve to a whole, parseable checkpoint.
    func testSIGKILLMidWriteNeverLeavesATornLatest() throws {
        let run = try makeTempDir("crash")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let exe = Bundle.main.executablePath ?? CommandLine.arguments[0]
        let ckpts = CheckpointDirectory(runDirectory: run, keep: 3)
        var sawProgress = 0
        var midWriteKills = 0   // rounds that left a temporary file: killed inside AtomicFile.write
        var rounds = 0
        // At least 8 kills, and more (up to 30) until one has landed inside a write.
        for round in 0..<30 where round < 8 || midWriteKills == 0 {
            rounds += 1
            let child = Process()
            child.executableURL = URL(fileURLWithPath: exe)
            child.arguments = ["SpadeTrainTests.CrashWriterChild/testWriteCheckpointsForever"]
            child.environment = ProcessInfo.processInfo.environment.merging(["SPADE_CRASH_WRITER_RUN": run]) { $1 }
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            // Wait until the child has written at least one new checkpoint, then a random bit more.
            let before = ckpts.stepFiles().last?.step ?? 0
            let deadline = Date().addingTimeInterval(30)
            while (ckpts.stepFiles().last?.step ?? 0) == before && Date() < deadline && child.isRunning { usleep(2000) }
            usleep(UInt32.random(in: 0...60_000))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            XCTAssertEqual(child.terminationReason, .uncaughtSignal, "round \(round): child exited by itself")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: ckpts.directory)) ?? []
            if names.contains(where: { $0.hasPrefix(AtomicFile.temporaryPrefix) }) { midWriteKills += 1 }
            guard let latest = ckpts.latestCheckpoint() else { XCTFail("round \(round): no checkpoint"); continue }
            assertWholeCheckpoint(latest)
            XCTAssertEqual(ckpts.latestTarget(), latest, "round \(round): latest itself should be whole")
            XCTAssertEqual(try SafeTensorsFile.read(path: ckpts.latestPath).metadata["step"],
                           CheckpointDirectory.step(ofFileName: (latest as NSString).lastPathComponent).map(String.init))
            sawProgress = max(sawProgress, ckpts.stepFiles().last?.step ?? 0)
        }
        XCTAssertGreaterThanOrEqual(sawProgress, 8)
        print("SIGKILL test: \(midWriteKills) of \(rounds) kills landed mid-write; newest step \(sawProgress)")
        XCTAssertGreaterThan(midWriteKills, 0, "no kill landed inside a write: the test proved nothing")
        XCTAssertLessThanOrEqual(ckpts.stepFiles().count, 4)   // keep 3, plus at most one not yet rotated
    }
}

/// Not a test on its own: the child process of `testSIGKILLMidWriteNeverLeavesATornLatest`.
final class CrashWriterChild: XCTestCase {
    func testWriteCheckpointsForever() throws {
        guard let run = ProcessInfo.processInfo.environment["SPADE_CRASH_WRITER_RUN"] else { return }
        let ckpts = CheckpointDirectory(runDirectory: run, keep: 3)
        var step = (ckpts.stepFiles().last?.step ?? 0) + 1
        while true {
            try ckpts.save(fakeCheckpoint(step: step, floats: 1 << 20), step: step)
            step += 1
        }
    }
}
