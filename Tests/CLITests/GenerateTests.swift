// `spade-dist generate` through the command line alone reproduces the PyTorch reference's
// eval-mode generator output (Tests/Fixtures/generator.safetensors, DESIGN §9 erratum).

import Foundation
import SafeTensors
import SpadeData
import SpadeTestSupport
import XCTest

final class GenerateTests: XCTestCase {
    /// The fixtures' tiny model as a spade-dist config (README "Tiny configuration").
    static let tinyConfig = """
        name: fixture-tiny
        label_nc: 5
        no_instance: true
        crop_size: 64
        load_size: 64
        aspect_ratio: 1.0
        num_upsampling_layers: normal
        ngf: 8
        ndf: 8
        spade_hidden: 16
        n_layers_D: 4
        num_D: 2
        synthetic_classes: 5

        """

    /// netG = tiny_init's parameters with generator.safetensors's `after.netG.*` buffers (u, v,
    /// running statistics and counters after its one training forward): the state whose
    /// eval-mode output is `eval.output`.
    func fixtureGenerator() throws -> SafeTensorsFile {
        let initial = try Fixtures.load("tiny_init"), gen = try Fixtures.load("generator")
        var file = SafeTensorsFile()
        for name in initial.names where name.hasPrefix("netG.") { file[name] = initial[name] }
        var replaced = 0
        for name in gen.names where name.hasPrefix("after.netG.") {
            let key = String(name.dropFirst("after.".count))
            XCTAssertNotNil(file[key], "\(key) is not a tiny_init tensor")
            file[key] = gen[name]
            replaced += 1
        }
        XCTAssertGreaterThan(replaced, 50)
        return file
    }

    /// eval.output [2, 3, 64, 64] in [-1, 1] as the 8-bit RGB pixels (H, W, 3) of image i.
    func expectedPixels(_ i: Int) throws -> [UInt8] {
        let out = try Fixtures.load("generator").f("eval.output")
        XCTAssertEqual(try Fixtures.load("generator").shape("eval.output"), [2, 3, 64, 64])
        var px = [UInt8](repeating: 0, count: 64 * 64 * 3)
        for c in 0..<3 {
            for p in 0..<(64 * 64) {
                let v = (out[(i * 3 + c) * 4096 + p] + 1) / 2 * 255
                px[p * 3 + c] = UInt8(max(0, min(255, v.rounded())))
            }
        }
        return px
    }

    /// Runs generate on tiny_data's labels 0000 and 0001 and compares with eval.output (|diff| <= 1 level).
    func checkGenerate(checkpoint: String, extraArgs: [String], in dir: String) throws {
        let labels = dir + "/labels", out = dir + "/out-\(UUID().uuidString)"
        if !FileManager.default.fileExists(atPath: labels) {
            try FileManager.default.createDirectory(atPath: labels, withIntermediateDirectories: true)
            for stem in ["0000", "0001"] {
                try FileManager.default.copyItem(atPath: "\(Fixtures.directory)/tiny_data/labels/\(stem).png",
                                                 toPath: "\(labels)/\(stem).png")
            }
        }
        let r = try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", labels, "--out", out] + extraArgs)
        E2E.assertSuccess(r, "spade-dist generate")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["0000.png", "0001.png"])
        for (i, stem) in ["0000", "0001"].enumerated() {
            let img = try readRGB("\(out)/\(stem).png")
            XCTAssertEqual([img.width, img.height], [64, 64])
            let expected = try expectedPixels(i)
            var worst = 0, off = 0
            for (a, b) in zip(img.pixels, expected) {
                let d = abs(Int(a) - Int(b))
                worst = max(worst, d)
                if d > 0 { off += 1 }
            }
            XCTAssertLessThanOrEqual(worst, 1, "\(stem): max difference \(worst) levels (\(off) values differ)")
            print("generate \(stem).png vs eval.output: max |diff| \(worst) level(s), \(off) of \(expected.count) values off by one")
        }
    }

    /// The fixture generator with the tiny config stored in its metadata, as train writes it.
    func checkpointWithStoredConfig(in dir: String) throws -> String {
        var file = try fixtureGenerator()
        file.metadata["config"] = Self.tinyConfig
        let ck = dir + "/fixture.safetensors"
        XCTAssert(FileManager.default.createFile(atPath: ck, contents: Data(file.serialized())))
        return ck
    }

    /// The config comes from the checkpoint's metadata (DESIGN §9).
    func testGenerateWithStoredConfigMatchesReferenceEvalOutput() throws {
        let dir = try CLI.tempDir("generate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ck = try checkpointWithStoredConfig(in: dir)
        try checkGenerate(checkpoint: ck, extraArgs: [], in: dir)
    }

    /// A generator-only file with no config (e.g. converted NVlabs weights) plus --config.
    func testGenerateWithConfigFileMatchesReferenceEvalOutput() throws {
        let dir = try CLI.tempDir("generate-config")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ck = dir + "/netG-only.safetensors"
        XCTAssert(FileManager.default.createFile(atPath: ck, contents: Data(try fixtureGenerator().serialized())))
        // Without a config the error says what to do.
        let missing = try E2E.run(["generate", "--checkpoint", ck, "--labels", Fixtures.directory + "/tiny_data/labels",
                                   "--out", dir + "/none"])
        XCTAssertEqual(missing.status, 2, missing.output)
        XCTAssert(missing.stderr.contains("pass --config"), missing.stderr)
        let cfg = dir + "/tiny.yaml"
        try Self.tinyConfig.write(toFile: cfg, atomically: true, encoding: .utf8)
        try checkGenerate(checkpoint: ck, extraArgs: ["--config", cfg], in: dir)
    }

    /// `--set` over a checkpoint's stored config is validated like any config before any work:
    /// a crop the model cannot take (not a multiple of 32, or beyond the stored load_size) is one
    /// line naming the key, exit 2, nothing written (it used to index out of bounds: SIGILL).
    func testOverridesOfTheStoredConfigAreValidated() throws {
        let dir = try CLI.tempDir("generate-set")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ck = try checkpointWithStoredConfig(in: dir)
        for (assignment, key) in [("crop_size=48", "crop_size"), ("crop_size=96", "load_size")] {
            let out = dir + "/out-" + assignment
            let r = try E2E.run(["generate", "--checkpoint", ck, "--labels", Fixtures.directory + "/tiny_data/labels",
                                 "--out", out, "--set", assignment])
            XCTAssertEqual(r.status, 2, "\(assignment): \(r.output)")
            let lines = r.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(assignment): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("key '\(key)'"), "\(assignment): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(assignment): output written")
        }
    }
}
