// The widened bad-input catalogue (issue 15; docs/robustness.md lists every case): damaged and
// hostile data files, configs, checkpoints and run directories through the command line. Each
// case is one run that must exit 2 with one line naming the culprit, no crash report, and leave
// nothing behind (BadInputCLITests.assertUserError and .train).

import Foundation
import SafeTensors
import SpadeData
import SpadeTestSupport
import XCTest

extension BadInputCLITests {
    // MARK: data files

    /// A copy of the fixtures' tiny dataset (4 pairs of 64x64 PNGs) to damage, and the
    /// arguments that train on it.
    func customData(_ name: String) throws -> (dir: String, args: [String]) {
        let dir = try work() + "/data-" + name
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.copyItem(atPath: tinyData, toPath: dir)
        return (dir, ["--set", "dataset_mode=custom", "--set", "label_dir=\(dir)/labels", "--set", "image_dir=\(dir)/images",
                      "--set", "label_nc=5", "--set", "load_size=64"])
    }

    func bytes(_ path: String) throws -> [UInt8] { try readFileBytes(path: path) }

    func write(_ bytes: [UInt8], to path: String) throws {
        XCTAssert(FileManager.default.createFile(atPath: path, contents: Data(bytes)), path)
    }

    /// One image of the dataset replaced by `damage(original bytes)`: the error names that file.
    func assertDamagedImage(_ name: String, extension ext: String = "png", mentions: [String],
                            _ damage: ([UInt8]) throws -> [UInt8], file: StaticString = #filePath, line: UInt = #line) throws {
        let (dir, args) = try customData(name)
        var original = try bytes(dir + "/images/0001.png")
        if ext == "jpg" {
            let img = try readImage(path: dir + "/images/0001.png")
            original = try encodeJPEG(width: img.width, height: img.height, channels: 3, pixels: img.rgb8())
            try FileManager.default.removeItem(atPath: dir + "/images/0001.png")
        }
        let path = dir + "/images/0001." + ext
        try write(try damage(original), to: path)
        assertUserError(try train(args), mentions: [path] + mentions, file: file, line: line)
    }

    /// PNGs cut at the signature, inside IHDR, inside the image data and before IEND, and one
    /// whose image data fails its CRC: all through libpng's setjmp error path.
    func testTruncatedAndCorruptPNGs() throws {
        try assertDamagedImage("png-signature-only", mentions: ["corrupt PNG"]) { Array($0.prefix(8)) }
        try assertDamagedImage("png-cut-in-IHDR", mentions: ["corrupt PNG"]) { Array($0.prefix(20)) }
        try assertDamagedImage("png-cut-in-IDAT", mentions: ["corrupt PNG"]) { Array($0.prefix($0.count / 2)) }
        try assertDamagedImage("png-no-IEND", mentions: ["corrupt PNG"]) { Array($0.dropLast(12)) }
        try assertDamagedImage("png-bad-crc", mentions: ["corrupt PNG"]) { b in
            var b = b
            b[b.count / 2] ^= 0x5a
            return b
        }
    }

    /// JPEGs cut after the header, in the middle of the scan, and with a scan overwritten by zeros.
    func testTruncatedAndCorruptJPEGs() throws {
        try assertDamagedImage("jpeg-cut-in-header", extension: "jpg", mentions: ["corrupt JPEG"]) { Array($0.prefix(100)) }
        try assertDamagedImage("jpeg-cut-in-scan", extension: "jpg", mentions: ["corrupt JPEG"]) { Array($0.prefix($0.count / 2)) }
        try assertDamagedImage("jpeg-zeroed-scan", extension: "jpg", mentions: ["corrupt JPEG"]) { b in
            var b = b
            for i in (b.count / 2)..<(b.count - 2) { b[i] = 0 }
            return b
        }
    }

    func testSixteenBitLabelIdsAboveLabelNC() throws {
        let (dir, args) = try customData("label16")
        var ids = [UInt16](repeating: 1, count: 64 * 64)
        ids[100] = 300; ids[200] = 1000
        let path = dir + "/labels/0002.png"
        try writePNG16(path: path, width: 64, height: 64, pixels: ids)
        assertUserError(try train(args), mentions: [path, "class id 1000 >= label_nc 5", "2 pixels"])
    }

    func testLabelAndImageSizeMismatch() throws {
        let (dir, args) = try customData("size")
        let path = dir + "/images/0003.png"
        try writePNG(path: path, width: 32, height: 64, channels: 3, pixels: [UInt8](repeating: 7, count: 32 * 64 * 3))
        assertUserError(try train(args), mentions: [path, "size 32x64 differs from its label", "64x64"])
    }

    func testMissingPair() throws {
        let (dir, args) = try customData("pair")
        try FileManager.default.removeItem(atPath: dir + "/images/0002.png")
        assertUserError(try train(args), mentions: [dir + "/labels/0002.png", "no image with the same name"])
    }

    /// Permissions do not stop root, so the run is made as user `nobody` (setpriv); skipped
    /// when that cannot be done (no setpriv, or the build is not readable by other users).
    func testUnreadableFileForAnOrdinaryUser() throws {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("needs root and /usr/bin/setpriv to run spade-dist as an ordinary user")
        }
        let (dir, args) = try customData("permissions")
        let path = dir + "/labels/0001.png"
        chmod(path, 0)
        let runDir = dir + "/run"
        let r = try ProcessRunner.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                           try CLI.exe(), "train", "--steps", "2", "--run-dir", runDir] + args,
                                      timeout: E2E.timeout, environment: E2E.backtraceOn)
        if r.status == 126 || r.stderr.contains("Permission denied") && !r.stderr.contains(path) {
            throw XCTSkip("spade-dist cannot run as nobody here: \(r.stderr)")
        }
        assertUserError(r, mentions: [path, "cannot read: Permission denied"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: runDir))
    }

    /// A directory, a dangling symlink, an unsupported format and an RGB map where files are expected.
    func testWrongKindsOfFiles() throws {
        var (dir, args) = try customData("dir-for-file")
        try FileManager.default.removeItem(atPath: dir + "/labels/0001.png")
        try FileManager.default.createDirectory(atPath: dir + "/labels/0001.png", withIntermediateDirectories: false)
        assertUserError(try train(args), mentions: [dir + "/labels/0001.png", "is a directory"])

        (dir, args) = try customData("dangling")
        try FileManager.default.removeItem(atPath: dir + "/images/0000.png")
        try FileManager.default.createSymbolicLink(atPath: dir + "/images/0000.png", withDestinationPath: dir + "/gone.png")
        assertUserError(try train(args), mentions: [dir + "/images/0000.png", "No such file or directory"])

        (dir, args) = try customData("tiff")
        try write([0x49, 0x49, 0x2A, 0, 8, 0, 0, 0], to: dir + "/images/0004.tif")
        assertUserError(try train(args), mentions: [dir + "/images/0004.tif", "unsupported image format .tif"])

        (dir, args) = try customData("rgb-label")
        try writePNG(path: dir + "/labels/0000.png", width: 64, height: 64, channels: 3, pixels: [UInt8](repeating: 1, count: 64 * 64 * 3))
        assertUserError(try train(args), mentions: [dir + "/labels/0000.png", "3 channels", "label_encoding"])
    }

    func testEmptyFolderAndFileForFolder() throws {
        var (dir, args) = try customData("empty")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir + "/labels") {
            try FileManager.default.removeItem(atPath: dir + "/labels/" + name)
        }
        assertUserError(try train(args), mentions: [dir + "/labels", "no PNG or JPEG files (label_dir)"])

        (dir, args) = try customData("file-for-dir")
        try FileManager.default.removeItem(atPath: dir + "/images")
        try write([1], to: dir + "/images")
        assertUserError(try train(args), mentions: [dir + "/images", "is not a directory (image_dir)"])
    }

    // MARK: configs

    func testYAMLSyntaxAndShapeErrors() throws {
        let cases: [(String, String, [String])] = [
            ("unclosed.yaml", "ngf: [8\nname: x\n", ["not valid YAML"]),
            ("indent.yaml", "ngf: 8\n  lr: 1\n", ["not valid YAML"]),
            ("toplist.yaml", "- ngf\n- 8\n", ["expected a mapping"]),
            ("twice.yaml", "ngf: 8\nndf: 8\nngf: 16\n", ["twice.yaml:3", "'ngf'", "given twice"]),
            ("nested.yaml", "lr:\n  value: 0.1\n", ["nested.yaml:1", "'lr'", "mapping"]),
            ("deep.yaml", "label_colors: " + String(repeating: "[", count: 30000) + String(repeating: "]", count: 30000),
             ["deep.yaml:1", "'label_colors'"]),
            ("huge.yaml", "name: " + String(repeating: "x", count: 70000), ["70006 bytes of YAML", "at most 64 KiB"]),
        ]
        for (name, text, mentions) in cases {
            let path = try writeFile(name, text)
            assertUserError(try train(["--config", path]), mentions: [path] + mentions)
        }
        let latin1 = try work() + "/latin1.yaml"
        try write(Array("name: caf".utf8) + [0xE9, 0x0A], to: latin1)
        assertUserError(try train(["--config", latin1]), mentions: [latin1, "not UTF-8"])
        let folder = try work() + "/config-folder.yaml"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        assertUserError(try train(["--config", folder]), mentions: [folder, "is a directory"])
    }

    func testSetValuesOfWrongFormTypeOrRange() throws {
        assertUserError(try train(["--set", "ngf"]), mentions: ["--set ngf", "expected key=value"])
        assertUserError(try train(["--set", "qqqqqqqqqq=1"]), mentions: ["unknown key 'qqqqqqqqqq'"])
        assertUserError(try train(["--set", "lr=nan"]), mentions: ["'lr'", "finite number", "'nan'"])
        assertUserError(try train(["--set", "batchSize=99999999999999999999"]), mentions: ["'batchSize'", "99999999999999999999"])
        assertUserError(try train(["--set", "max_skipped_steps=-1"]), mentions: ["'max_skipped_steps'", "-1", "out of range"])
        assertUserError(try train(["--set", "label_colors=[[0, 0], [1, 2, 3]]", "--set", "label_encoding=rgb"]),
                        mentions: ["'label_colors'"])
        assertUserError(try train(["--set", "aspect_ratio=3"]), mentions: ["'aspect_ratio'", "3"])
    }

    // MARK: checkpoints

    /// The good checkpoint with its JSON header edited (data section unchanged).
    func editedHeader(_ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let good = try bytes(try goodCheckpoint)
        let length = good[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(good[8..<(8 + length)])) as? [String: Any])
        edit(&header)
        var json = try Array(JSONSerialization.data(withJSONObject: header))
        while json.count % 8 != 0 { json.append(0x20) }
        return (0..<8).map { UInt8((json.count >> (8 * $0)) & 0xff) } + json + good[(8 + length)...]
    }

    /// Structurally hostile files through `--resume` (and `inspect`): overlapping data, a shape
    /// whose size overflows, offsets near Int.max, an unknown dtype, a header that is not an object.
    func testHostileCheckpointHeaders() throws {
        let first = try SafeTensorsFile.read(path: try goodCheckpoint).names[0]
        func entry(_ h: [String: Any], _ name: String) -> [String: Any] { h[name] as! [String: Any] }
        let cases: [(String, [String], (inout [String: Any]) -> Void)] = [
            ("overlap", ["overlap"], { h in
                // The next tensor's bytes moved onto the first one's (which starts at offset 0).
                let second = h.keys.filter { $0 != "__metadata__" && $0 != first }.sorted()[0]
                var e = entry(h, second)
                let offsets = e["data_offsets"] as! [Int]
                e["data_offsets"] = [0, offsets[1] - offsets[0]]
                h[second] = e
            }),
            ("huge-shape", ["too large"], { h in
                var e = entry(h, first)
                e["shape"] = [4611686018427387904, 4]
                h[first] = e
            }),
            ("offsets-near-int-max", ["outside the file"], { h in
                var e = entry(h, first)
                e["data_offsets"] = [9223372036854775800, 9223372036854775807]
                h[first] = e
            }),
            ("bf16", ["unsupported dtype BF16"], { h in
                var e = entry(h, first)
                e["dtype"] = "BF16"
                h[first] = e
            }),
        ]
        for (name, mentions, edit) in cases {
            let path = try work() + "/hostile-\(name).safetensors"
            try write(try editedHeader(edit), to: path)
            assertUserError(try train(["--resume", path] + E2E.small), mentions: [path] + mentions)
            assertUserError(try E2E.run(["inspect", path]), mentions: [path] + mentions)
        }
        let notObject = try work() + "/hostile-array.safetensors"
        try write([8, 0, 0, 0, 0, 0, 0, 0] + Array("[1,2,3] ".utf8), to: notObject)
        assertUserError(try train(["--resume", notObject] + E2E.small), mentions: [notObject, "not a JSON object"])
    }

    /// Well-formed files with impossible contents: a float optimizer step of 1e30 (crashed before:
    /// fuzz/regressions/safetensors/float-step-beyond-int64.safetensors), a negative step, and a
    /// checkpoint of another model, which names the first tensor of the model that differs.
    func testCheckpointsWithImpossibleContents() throws {
        var file = try SafeTensorsFile.read(path: try goodCheckpoint)
        file["optG.step"] = TensorRecord(shape: [], floats: [1e30])
        let floatStep = try work() + "/float-step.safetensors"
        try write(file.serialized(), to: floatStep)
        assertUserError(try train(["--resume", floatStep] + E2E.small), mentions: [floatStep, "'optG.step'"])
        assertUserError(try train(["--init", floatStep] + E2E.small), mentions: [floatStep, "'optG.step'"])

        file = try SafeTensorsFile.read(path: try goodCheckpoint)
        file.metadata["step"] = "-4"
        let negative = try work() + "/negative-step.safetensors"
        try write(file.serialized(), to: negative)
        assertUserError(try train(["--resume", negative] + E2E.small), mentions: [negative, "'step'"])

        // The small model's checkpoint into the default model (ngf 16): the first tensor that
        // differs is named, with the shape the file has.
        let ck = try goodCheckpoint
        let r = try train(["--resume", ck])
        assertUserError(r, mentions: [ck, "tensor 'netG.", "the model needs"])
        let named = try XCTUnwrap(r.stderr.firstMatch(of: /tensor '([^']+)' is F32 \[([0-9, ]+)\]/), r.stderr)
        let stored = try XCTUnwrap(SafeTensorsFile.read(path: ck)[String(named.1)], "\(named.1) is not in the checkpoint")
        XCTAssertEqual(stored.shape.map(String.init).joined(separator: ", "), String(named.2))
    }

    /// `--resume auto` in a run directory whose checkpoint a newer spade-dist wrote: an error
    /// that says so (not "damaged", not a fresh start), and the run directory is left as it was.
    func testResumeOfARunWrittenByANewerFormat() throws {
        let run = RunDirectory(path: try work() + "/newer-run")
        try FileManager.default.createDirectory(atPath: run.checkpoints, withIntermediateDirectories: true)
        var file = try SafeTensorsFile.read(path: try goodCheckpoint)
        file.metadata["format"] = "spade-dist/2"
        try write(file.serialized(), to: run.checkpoint(step: 1))
        try FileManager.default.createSymbolicLink(atPath: run.latest, withDestinationPath: "step_00000001.safetensors")
        let r = try E2E.run(["train", "--resume", "auto", "--steps", "2", "--run-dir", run.path] + E2E.small)
        assertUserError(r, mentions: [run.checkpoint(step: 1), "newer spade-dist", "spade-dist/2"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path), ["checkpoints"])
        XCTAssertEqual(run.checkpointNames(), ["latest.safetensors", "step_00000001.safetensors"])
    }

    // MARK: run directories

    /// A run directory on a read-only file system (a read-only tmpfs mount; skipped where mounting
    /// is not allowed) and one that is a file: exit 2 naming it, before any step.
    func testRunDirectoryThatCannotBeWritten() throws {
        let mountPoint = try work() + "/readonly"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = try ProcessRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mountPoint])
        if mount.status == 0 {
            defer { _ = try? ProcessRunner.run("/bin/umount", [mountPoint]) }
            let runDir = mountPoint + "/run"
            let r = try E2E.run(["train", "--steps", "2", "--run-dir", runDir] + E2E.small)
            assertUserError(r, mentions: [mountPoint, "Read-only file system", "run_dir \(runDir)"])
        } else {
            print("skipped the read-only mount case: cannot mount a tmpfs here (\(mount.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        let file = try writeFile("run-dir-is-a-file", "x")
        assertUserError(try E2E.run(["train", "--steps", "2", "--run-dir", file] + E2E.small),
                        mentions: [file, "not a directory", "run_dir"])
    }
}
