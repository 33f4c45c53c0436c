import XCTest
import SpadeTrain

final class ConfigTests: XCTestCase {
    private func configError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            try body()
            XCTFail("expected a ConfigError", file: file, line: line)
            return ""
        } catch let e as ConfigError {
            XCTAssertEqual(e.exitCode, 2, file: file, line: line)
            return e.description
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
            return ""
        }
    }

    func testDefaultsAreTheTinyConfigAndValid() throws {
        let c = TrainConfig()
        XCTAssertEqual(c.name, "tiny")
        XCTAssertEqual(c.dataset_mode, "synthetic")
        XCTAssertEqual(c.crop_size, 64)
        XCTAssertEqual(c.ngf, 16)
        XCTAssertEqual(c.ndf, 16)
        XCTAssertEqual(c.spade_hidden, 32)
        XCTAssertEqual(c.batchSize, 2)
        XCTAssertEqual(c.steps, 300)
        XCTAssertEqual(c.checkpoint_every, 100)
        XCTAssertEqual(c.sample_every, 50)
        XCTAssertEqual(c.norm_G, "spectralspadesyncbatch3x3")
        XCTAssertEqual(c.lr, 0.0002)
        XCTAssertTrue(c.no_instance)
        XCTAssertEqual(c.runDirectory, "runs/tiny")
        XCTAssertEqual(c.semanticChannels, 8)
        XCTAssertEqual(c.imageHeight, 64)
        try c.validate()
        // Every table default is what init() stored.
        for spec in TrainConfig.keys { XCTAssertEqual(c.value(of: spec.name), spec.defaultValue, spec.name) }
        XCTAssertEqual(Set(TrainConfig.keys.map(\.name)).count, TrainConfig.keys.count, "duplicate key names")
    }

    func testTableCoversEveryStoredProperty() {
        // A property added to TrainConfig without a table entry would be silently undocumented.
        let stored = Mirror(reflecting: TrainConfig()).children.compactMap(\.label).filter { !$0.hasPrefix("_") && $0 != "explicitKeys" }
        XCTAssertEqual(Set(stored), Set(TrainConfig.keys.map(\.name)))
        XCTAssertEqual(stored.count, TrainConfig.keys.count)
    }

    func testYAMLParsingAndTypes() throws {
        let c = try TrainConfig.parse(yaml: """
            name: landcover
            ngf: 32
            lr: 1e-4
            no_flip: yes
            aspect_ratio: 2
            crop_size: 128
            load_size: 140
            dataroot: "/data/tiles"
            dataset_mode: classified_tiles
            D_steps_per_G: 3
            """)
        XCTAssertEqual(c.name, "landcover")
        XCTAssertEqual(c.ngf, 32)
        XCTAssertEqual(c.lr, 0.0001)
        XCTAssertTrue(c.no_flip)
        XCTAssertEqual(c.aspect_ratio, 2.0)
        XCTAssertEqual(c.imageHeight, 64)
        XCTAssertEqual(c.dataroot, "/data/tiles")
        XCTAssertEqual(c.d_steps_per_g, 3)
        XCTAssertEqual(c.runDirectory, "runs/landcover")
        XCTAssertEqual(try TrainConfig.parse(yaml: ""), TrainConfig())
        XCTAssertEqual(try TrainConfig.parse(yaml: "# only a comment\n"), TrainConfig())
    }

    func testUnknownKeySuggestsClosest() {
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "ngff: 3", source: "config.yaml") },
                       "config.yaml:1: unknown key 'ngff' (did you mean 'ngf'?)")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "name: x\nbatch_size: 3", source: "c.yaml") },
                       "c.yaml:2: unknown key 'batch_size' (did you mean 'batchSize'?)")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "totally_unrelated_thing: 3", source: "c.yaml") },
                       "c.yaml:1: unknown key 'totally_unrelated_thing' (the keys are listed in README.md)")
    }

    func testTypeAndRangeErrorsNameKeyAndValue() {
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "ngf: abc", source: "config.yaml") },
                       "config.yaml:1: key 'ngf': expected an integer, got 'abc'")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "ngf: 2.5", source: "config.yaml") },
                       "config.yaml:1: key 'ngf': expected an integer, got '2.5'")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "crop_size: 0", source: "config.yaml") },
                       "config.yaml:1: key 'crop_size': 0 is out of range (must be >= 1)")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "lr: 0", source: "config.yaml") },
                       "config.yaml:1: key 'lr': 0.0 is out of range (must be > 0)")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "no_flip: maybe", source: "config.yaml") },
                       "config.yaml:1: key 'no_flip': expected true or false, got 'maybe'")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "ngf:", source: "config.yaml") },
                       "config.yaml:1: key 'ngf': expected an integer, got null")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "ngf: [1, 2]", source: "config.yaml") },
                       "config.yaml:1: key 'ngf': expected an integer, got a list")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "ngf: 8\nngf: 9", source: "config.yaml") },
                       "config.yaml:2: key 'ngf': given twice")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "- a\n- b", source: "config.yaml") },
                       "config.yaml: expected a mapping of key: value at the top level")
        XCTAssert(configError { _ = try TrainConfig.parse(yaml: "ngf: [1,", source: "config.yaml") }
            .hasPrefix("config.yaml: not valid YAML"))
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "dataset_mode: coco", source: "config.yaml") },
                       "config.yaml:1: key 'dataset_mode': 'coco' is not supported (must be one of 'synthetic', 'custom', 'classified_tiles')")
        let normG = configError { _ = try TrainConfig.parse(yaml: "norm_G: spectralspadeinstance3x3", source: "config.yaml") }
        XCTAssert(normG.hasPrefix("config.yaml:1: key 'norm_G': 'spectralspadeinstance3x3' is not supported (must be one of 'spectralspadesyncbatch3x3', 'spectralspadebatch3x3'): spade-dist implements only"), normG)
        XCTAssert(configError { _ = try TrainConfig.parse(yaml: "norm_D: spectralbatch") }.contains("key 'norm_D': 'spectralbatch' is not supported (must be 'spectralinstance')"))
        XCTAssert(configError { _ = try TrainConfig.parse(yaml: "gan_mode: ls") }.contains("key 'gan_mode'"))
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "norm_G: spectralspadebatch3x3"))
    }

    func testSetOverridesUseTheSameParsing() throws {
        let c = try TrainConfig.load(path: nil, overrides: ["ngf=24", "lr=0.001", "name=my run", "no_flip=true", "D_steps_per_G=2", "dataroot="])
        XCTAssertEqual(c.ngf, 24)
        XCTAssertEqual(c.lr, 0.001)
        XCTAssertEqual(c.name, "my run")
        XCTAssertTrue(c.no_flip)
        XCTAssertEqual(c.d_steps_per_g, 2)
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["ngf=abc"]) },
                       "--set: key 'ngf': expected an integer, got 'abc'")
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["ngff=3"]) },
                       "--set: unknown key 'ngff' (did you mean 'ngf'?)")
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["ngf"]) },
                       "--set ngf: expected key=value")
    }

    func testLoadFromFileThenOverride() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("c.yaml").path
        try "ngf: 32\nndf: 8\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try TrainConfig.load(path: path, overrides: ["ngf=48"])
        XCTAssertEqual(c.ngf, 48)
        XCTAssertEqual(c.ndf, 8)
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: dir.appendingPathComponent("missing.yaml").path) },
                       "\(dir.appendingPathComponent("missing.yaml").path): cannot read the config file")
        try "ngf: 32\nbad_key: 1\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: path) },
                       "\(path):2: unknown key 'bad_key' (the keys are listed in README.md)")
    }

    func testCrossKeyValidation() throws {
        func err(_ yaml: String) -> String { configError { _ = try TrainConfig.parse(yaml: yaml, source: "c.yaml") } }
        XCTAssertEqual(err("crop_size: 48\nload_size: 48"),
                       "c.yaml: key 'crop_size': 48 is not a multiple of 32 (required by num_upsampling_layers normal)")
        XCTAssertEqual(err("crop_size: 96\nload_size: 96\nnum_upsampling_layers: more"), "c.yaml: key 'crop_size': 96 is not a multiple of 64 (required by num_upsampling_layers more)")
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "crop_size: 128\nload_size: 128\nnum_upsampling_layers: most"))
        // 256 wide, aspect 2 -> 128 high = 4 * 32: fine.
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "crop_size: 256\nload_size: 256\naspect_ratio: 2.0"))
        // 64 wide, aspect 1.5: sw 2, sh round(1.333) = 1, height round(42.67) = 43 != 32.
        XCTAssert(err("aspect_ratio: 1.5").hasPrefix("c.yaml: key 'aspect_ratio': 1.5 with crop_size 64 gives height 43"), err("aspect_ratio: 1.5"))
        // 32 wide (sw 1), aspect 0.4: height 80, sh = round(2.5) = 2 (Python rounds half to even), 2 * 32 = 64.
        XCTAssert(err("crop_size: 32\nload_size: 32\naspect_ratio: 0.4").contains("gives height 80, which is not 32 * round(1 / 0.4) = 64"))
        // 64 wide, aspect 0.5: 128 high = 4 * 32: fine.
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "aspect_ratio: 0.5"))
        XCTAssertEqual([0.5, 1.5, 2.5, 3.5, -0.5, 2.4999].map(roundHalfEven), [0, 2, 2, 4, 0, 2])
        XCTAssertEqual(err("load_size: 60"), "c.yaml: key 'load_size': 60 is smaller than crop_size 64 (preprocess_mode resize_and_crop crops crop_size from load_size)")
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "load_size: 60\npreprocess_mode: fixed"))
        XCTAssertEqual(err("dataset_mode: custom"), "c.yaml: key 'label_dir': required when dataset_mode is custom (or set dataroot)")
        XCTAssertEqual(err("dataset_mode: custom\nlabel_dir: l"), "c.yaml: key 'image_dir': required when dataset_mode is custom (or set dataroot)")
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "dataset_mode: custom\ndataroot: d\nno_instance: false", source: "c.yaml"))
        XCTAssertEqual(err("dataset_mode: custom\nlabel_dir: l\nimage_dir: i\nno_instance: false"),
                       "c.yaml: key 'instance_dir': required when no_instance is false (or set dataroot, or no_instance: true)")
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "dataset_mode: custom\nlabel_dir: l\nimage_dir: i\nno_instance: false\ninstance_dir: x"))
        XCTAssertEqual(err("dataset_mode: classified_tiles").prefix(34), "c.yaml: key 'dataroot': required w")
        XCTAssertEqual(err("synthetic_classes: 9"), "c.yaml: key 'synthetic_classes': 9 exceeds label_nc 8")
        XCTAssertEqual(err("steps: 0\nniter: 0"), "c.yaml: key 'steps': 0 derives the length from niter + niter_decay epochs, but both are 0")
    }

    func testNVlabsBetaDefaultsFollowNoTTUR() throws {
        let ttur = TrainConfig()
        XCTAssertEqual(ttur.adamBetas.beta1, 0)
        XCTAssertEqual(ttur.adamBetas.beta2, 0.9)
        let plain = try TrainConfig.load(path: nil, overrides: ["no_TTUR=true"])
        XCTAssertEqual(plain.beta1, 0.5)
        XCTAssertEqual(plain.beta2, 0.999)
        XCTAssertEqual(plain.adamBetas.beta2, 0.999)
        let given = try TrainConfig.load(path: nil, overrides: ["no_TTUR=true", "beta1=0.1"])
        XCTAssertEqual(given.beta1, 0.1)
        XCTAssertEqual(given.beta2, 0.999)
        XCTAssert(configError { _ = try TrainConfig.load(path: nil, overrides: ["beta1=0.5"]) }
            .hasPrefix("key 'beta1': 0.5 has no effect with TTUR"))
    }

    func testYAMLRoundTrip() throws {
        var c = TrainConfig()
        c.name = "weird: name # with \"quotes\""
        c.dataroot = "/data/x y"
        c.run_dir = "yes"            // a YAML 1.1 bool word must stay a string
        c.label_dir = "123"          // a number-looking string
        c.lr = 1e-5
        c.lambda_feat = 10
        c.aspect_ratio = 1
        c.no_flip = true
        let text = c.yaml()
        XCTAssert(text.contains("\nlr: 1.0e-05\n"), text)
        XCTAssert(text.contains("\nlambda_feat: 10.0\n"), text)
        XCTAssert(text.contains("\nrun_dir: \"yes\"\n"), text)
        XCTAssert(text.contains("\nlabel_dir: \"123\"\n"), text)
        let back = try TrainConfig.parse(yaml: text)
        XCTAssertEqual(back, c)
        XCTAssertEqual(back.yaml(), text)
        // Key order is the table's.
        let keysInText = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { String($0.split(separator: ":")[0]) }
        XCTAssertEqual(keysInText, TrainConfig.keys.map(\.name))
        // Any single non-default value survives the trip.
        for assignments in [["seed=7"], ["no_TTUR=true", "beta1=0.25"], ["no_TTUR=true"], ["bucket_mb=0.5"],
                            ["preprocess_mode=none"], ["name=a/b-c.d"], ["lr=3.3e-7"]] {
            let x = try TrainConfig.load(path: nil, overrides: assignments)
            XCTAssertEqual(try TrainConfig.parse(yaml: x.yaml()), x, "\(assignments)")
        }
    }

    func testLearningRateScheduleMatchesNVlabs() {
        var c = TrainConfig()
        c.lr = 0.0002
        c.niter = 2
        c.niter_decay = 4
        // NVlabs: update_learning_rate(e) at the end of epoch e subtracts lr/niter_decay when e > niter.
        // Epochs 1..3 use lr; epoch 4 after one decrement; epoch 6 after three.
        func ref(_ epoch: Int) -> Double {
            var lr = 0.0002
            for e in 1..<epoch where e > 2 { lr -= 0.0002 / 4 }
            return lr
        }
        for epoch in 1...6 {
            let (g, d) = c.learningRates(epoch: epoch)
            XCTAssertEqual(g, Float(ref(epoch) / 2), "epoch \(epoch)")
            XCTAssertEqual(d, Float(ref(epoch) * 2), "epoch \(epoch)")
        }
        XCTAssertEqual(c.learningRates(epoch: 1).g, 0.0001)
        XCTAssertEqual(c.learningRates(epoch: 4).d, Float(0.0003))
        XCTAssertEqual(c.learningRates(epoch: 6).g, Float(0.000025))
        XCTAssertEqual(c.learningRates(epoch: 7).g, 0, accuracy: 1e-12)   // past the schedule: 0, never negative
        XCTAssertGreaterThanOrEqual(c.learningRates(epoch: 100).g, 0)
        c.no_TTUR = true
        XCTAssertEqual(c.learningRates(epoch: 1).g, 0.0002)
        XCTAssertEqual(c.learningRates(epoch: 1).d, 0.0002)
        c.niter_decay = 0
        XCTAssertEqual(c.learningRates(epoch: 500).g, 0.0002)   // no decay at all
    }

    func testTotalSteps() {
        var c = TrainConfig()
        XCTAssertEqual(c.totalSteps(stepsPerEpoch: 10), 300)
        c.steps = 0
        c.niter = 3
        c.niter_decay = 2
        XCTAssertEqual(c.totalSteps(stepsPerEpoch: 10), 50)
    }

    func testMarkdownTableListsEveryKey() {
        let table = TrainConfig.markdownKeyTable()
        let rows = table.split(separator: "\n")
        XCTAssertEqual(rows.count, TrainConfig.keys.count + 2)
        XCTAssert(table.contains("| `crop_size` | int | `64` | >= 1 | 512 |"), table)
        XCTAssert(table.contains("| `d_steps_per_g` (also `D_steps_per_G`) | int | `1` | >= 1 | 1 |"), table)
        XCTAssert(table.contains("| `dataroot` | string | `\"\"` |"), table)
        for row in rows.dropFirst(2) {   // 6 columns = 7 unescaped pipes
            XCTAssertEqual(row.filter { $0 == "|" }.count - (row.components(separatedBy: "\\|").count - 1), 7, String(row))
        }
    }

    /// README.md's table between the markers must equal the generated one.
    /// Set SPADE_UPDATE_README=1 to rewrite it in place.
    func testREADMEKeyTableIsCurrent() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = root.appendingPathComponent("README.md")
        let begin = "<!-- config-keys:begin -->", end = "<!-- config-keys:end -->"
        guard let text = try? String(contentsOf: readme, encoding: .utf8),
              let b = text.range(of: begin), let e = text.range(of: end), b.upperBound <= e.lowerBound else {
            throw XCTSkip("README.md has no \(begin) ... \(end) markers yet; paste TrainConfig.markdownKeyTable() between them")
        }
        let expected = "\n" + TrainConfig.markdownKeyTable()
        let current = String(text[b.upperBound..<e.lowerBound])
        if current != expected, ProcessInfo.processInfo.environment["SPADE_UPDATE_README"] == "1" {
            try text.replacingCharacters(in: b.upperBound..<e.lowerBound, with: expected).write(to: readme, atomically: true, encoding: .utf8)
            return
        }
        XCTAssertEqual(current, expected, "README.md's config table is stale; rerun with SPADE_UPDATE_README=1")
    }

    func testClosestKey() {
        XCTAssertEqual(TrainConfig.closestKey(to: "crop_sz"), "crop_size")
        XCTAssertEqual(TrainConfig.closestKey(to: "d_steps_per_G"), "d_steps_per_g")
        XCTAssertEqual(TrainConfig.closestKey(to: "LR"), "lr")
        XCTAssertNil(TrainConfig.closestKey(to: "xyzzy_plugh_frobnicate"))
    }
}
