// NVlabs parity through the command line (issue 11): Adam betas under TTUR, gan_mode,
// label_colors, max_dataset_size and generate --how-many.

import Foundation
import SafeTensors
import SpadeData
import SpadeTestSupport
import XCTest

final class ParityCLITests: XCTestCase {
    /// This class's scratch folder, with one training step under TTUR with NVlabs' no_TTUR
    /// betas (`betas/checkpoints/step_00000001.safetensors`).
    static let scratch = SharedScratch(tag: "parity") { d in
        let r = try E2E.run(["train", "--steps", "1", "--run-dir", d + "/betas", "--set", "beta1=0.5", "--set", "beta2=0.999"]
                            + E2E.small)
        E2E.assertSuccess(r, "train with TTUR and beta1 0.5, beta2 0.999")
    }

    override class func tearDown() {
        scratch.remove()
        super.tearDown()
    }

    func work() throws -> String { try Self.scratch.path() }

    /// Exit code 2 and one line on stderr that mentions every string of `mentions`.
    func assertOneLineUserError(_ r: ProcessResult, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 2, "exit code\n\(r.output)", file: file, line: line)
        let lines = r.stderr.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        XCTAssertEqual(lines.count, 1, "stderr:\n\(r.stderr)", file: file, line: line)
        for m in mentions { XCTAssert(r.stderr.contains(m), "stderr does not mention \(m):\n\(r.stderr)", file: file, line: line) }
    }

    // MARK: Adam betas

    /// After one Adam step from zero moments, exp_avg = (1 - beta1) g and exp_avg_sq = (1 - beta2) g^2,
    /// so exp_avg^2 / exp_avg_sq = (1 - beta1)^2 / (1 - beta2) for every element, whatever g:
    /// 0.25 / 0.001 = 250 for (0.5, 0.999); the old hard-wired TTUR betas (0, 0.9) give 10.
    func testTTURTrainsWithTheConfiguredAdamBetas() throws {
        let ck = try loadCheckpoint(try work() + "/betas/checkpoints/step_00000001.safetensors")
        let config = try XCTUnwrap(ck.metadata["config"])
        XCTAssert(config.contains("\nbeta1: 0.5\n") && config.contains("\nbeta2: 0.999\n") && config.contains("\nno_TTUR: false\n"), config)
        for opt in ["optG", "optD"] {
            var checked = 0, worst = 0.0
            for name in ck.names where name.hasPrefix(opt + ".") && name.hasSuffix(".exp_avg") {
                let m = try ck.f(name), v = try ck.f(name + "_sq")
                for (a, b) in zip(m, v) where b > 1e-30 {
                    let ratio = Double(a) * Double(a) / Double(b)
                    worst = max(worst, abs(ratio / 250 - 1))
                    checked += 1
                }
            }
            XCTAssertGreaterThan(checked, 1000, opt)
            // float32 moments: a few roundings of 6e-8 each.
            XCTAssertLessThan(worst, 1e-5, "\(opt): exp_avg^2 / exp_avg_sq is not (1 - 0.5)^2 / (1 - 0.999)")
        }
    }

    // MARK: gan_mode

    /// Each non-default gan_mode trains two steps; the logged losses follow the mode. With `w`,
    /// G_GAN = -mean P(fake) = -D_Fake on the one D forward of the step; with `ls` and
    /// `original` every term is positive (hinge's and w's G_GAN = -mean P(fake) need not be).
    func testEveryNonDefaultGANModeTrains() throws {
        for mode in ["ls", "original", "w"] {
            let run = RunDirectory(path: try work() + "/gan-\(mode)")
            let r = try E2E.run(["train", "--steps", "2", "--run-dir", run.path, "--set", "gan_mode=\(mode)"] + E2E.small)
            E2E.assertSuccess(r, "train with gan_mode \(mode)")
            let config = try String(contentsOfFile: run.path + "/config.yaml", encoding: .utf8)
            XCTAssert(config.contains("\ngan_mode: \(mode)\n"), config)
            let first = try XCTUnwrap(try run.metrics().first?.object, mode)
            let losses = try ["D_Fake", "D_real", "G_GAN", "loss_D", "loss_G"].map { key in
                try XCTUnwrap(metricFloat(first[key]), "\(mode): \(key) missing in metrics.jsonl")
            }
            XCTAssert(losses.allSatisfy(\.isFinite), "\(mode): \(losses)")
            switch mode {
            case "w": XCTAssertEqual(losses[2], -losses[0], accuracy: 1e-6 * max(1, abs(losses[0])), "w: G_GAN vs D_Fake")
            default: XCTAssert(losses[0...2].allSatisfy { $0 > 0 }, "\(mode): \(losses)")
            }
        }
    }

    // MARK: label_colors and max_dataset_size

    static let colors: [[UInt8]] = [[0, 0, 0], [128, 64, 128], [70, 130, 180], [107, 142, 35], [220, 20, 60]]

    /// tiny_data's first three samples with their class ids 0...4 written as `colors`; sample
    /// 0002 also has `strayPixels` pixels of (1, 2, 3), a colour no class has.
    func rgbData(strayPixels: Int) throws -> String {
        let dir = try work() + "/rgb-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/train_label", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/train_img", withIntermediateDirectories: true)
        for stem in ["0000", "0001", "0002"] {
            let label = try readImage(path: "\(Fixtures.directory)/tiny_data/labels/\(stem).png")
            var rgb = try XCTUnwrap(label.indexValues()).flatMap { Self.colors[Int($0)] }
            if stem == "0002" { for p in 0..<strayPixels { rgb.replaceSubrange((3 * p)..<(3 * p + 3), with: [1, 2, 3]) } }
            try writePNG(path: "\(dir)/train_label/\(stem).png", width: label.width, height: label.height, channels: 3, pixels: rgb)
            try FileManager.default.copyItem(atPath: "\(Fixtures.directory)/tiny_data/images/\(stem).png",
                                             toPath: "\(dir)/train_img/\(stem).png")
        }
        return dir
    }

    func rgbArgs(_ data: String) -> [String] {
        let list = "[" + Self.colors.map { "[\($0[0]), \($0[1]), \($0[2])]" }.joined(separator: ", ") + "]"
        return ["--set", "dataset_mode=custom", "--set", "dataroot=\(data)", "--set", "label_encoding=rgb",
                "--set", "label_colors=\(list)", "--set", "label_nc=5", "--set", "load_size=64"]
    }

    func testRGBLabelsThroughLabelColors() throws {
        let good = try rgbData(strayPixels: 0)
        E2E.assertSuccess(try E2E.run(["train", "--steps", "1", "--run-dir", good + "/run"] + rgbArgs(good) + E2E.small),
                          "train on rgb labels")
        // generate reads the colours the same way: the same images as from the index labels.
        let checkpoint = good + "/run/checkpoints/step_00000001.safetensors"
        E2E.assertSuccess(try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", good + "/train_label",
                                       "--out", good + "/gen-rgb"]), "generate from rgb labels")
        E2E.assertSuccess(try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", "\(Fixtures.directory)/tiny_data/labels",
                                       "--out", good + "/gen-index", "--how-many", "3",
                                       "--set", "label_encoding=index", "--set", "label_colors="]), "generate from index labels")
        for stem in ["0000", "0001", "0002"] {
            XCTAssertEqual(try readRGB("\(good)/gen-rgb/\(stem).png").pixels, try readRGB("\(good)/gen-index/\(stem).png").pixels, stem)
        }
        let bad = try rgbData(strayPixels: 5)
        assertOneLineUserError(try E2E.run(["train", "--steps", "0", "--run-dir", bad + "/run"] + rgbArgs(bad)),
                               mentions: ["\(bad)/train_label/0002.png", "colour (1, 2, 3) in 5 pixels", "label_colors"])
        assertOneLineUserError(try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", bad + "/train_label",
                                            "--out", bad + "/gen"]),
                               mentions: ["\(bad)/train_label/0002.png", "colour (1, 2, 3) in 5 pixels", "label_colors"])
        assertOneLineUserError(try E2E.run(["train", "--steps", "0", "--run-dir", good + "/run2"] + rgbArgs(good)
                                           + ["--set", "label_colors=[[0, 0, 0], [9, 9, 9], [0, 0, 0]]"]),
                               mentions: ["key 'label_colors'", "entry 2 [0, 0, 0] repeats the colour of entry 0"])
        assertOneLineUserError(try E2E.run(["train", "--steps", "0", "--run-dir", good + "/run3"] + rgbArgs(good)
                                           + ["--set", "label_colors=[[0, 0, 0], [256, 0, 0]]"]),
                               mentions: ["key 'label_colors'", "256 is out of range (must be 0 ... 255)"])
        assertOneLineUserError(try E2E.run(["train", "--steps", "0", "--run-dir", good + "/run4"] + rgbArgs(good)
                                           + ["--set", "label_nc=4"]),
                               mentions: ["key 'label_colors'", "5 colours for label_nc 4"])
    }

    /// The bad sample 0002 is third in sorted order: max_dataset_size 2 never reads it.
    func testMaxDatasetSizeUsesOnlyTheFirstSortedSamples() throws {
        let data = try rgbData(strayPixels: 5)
        assertOneLineUserError(try E2E.run(["train", "--steps", "0", "--run-dir", data + "/run"] + rgbArgs(data)),
                               mentions: ["0002.png"])
        let r = try E2E.run(["train", "--steps", "0", "--run-dir", data + "/run", "--set", "max_dataset_size=2"] + rgbArgs(data))
        E2E.assertSuccess(r, "--steps 0 with max_dataset_size 2")
        XCTAssert(r.stdout.contains("config and data are valid"), r.stdout)
        assertOneLineUserError(try E2E.run(["train", "--steps", "0", "--run-dir", data + "/run", "--set", "max_dataset_size=1"]
                                           + rgbArgs(data)),
                               mentions: ["1 samples cannot fill one global batch of 2"])
    }

    // MARK: generate --how-many

    func testGenerateHowMany() throws {
        let checkpoint = try work() + "/betas/checkpoints/step_00000001.safetensors"
        let labels = "\(Fixtures.directory)/tiny_data/labels", out = try work() + "/generated"
        let r = try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", labels, "--out", out, "--how-many", "2"])
        E2E.assertSuccess(r, "generate --how-many 2")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["0000.png", "0001.png"])
        let all = try work() + "/generated-all"
        E2E.assertSuccess(try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", labels, "--out", all]), "generate")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: all).count, 4)
        // A usage error, reported as ArgumentParser's (the message, then the usage line).
        let zero = try E2E.run(["generate", "--checkpoint", checkpoint, "--labels", labels, "--out", out, "--how-many", "0"])
        XCTAssertEqual(zero.status, 2, zero.output)
        XCTAssert(zero.stderr.hasPrefix("Error: --how-many must be >= 1, got 0\n"), zero.stderr)
    }
}
