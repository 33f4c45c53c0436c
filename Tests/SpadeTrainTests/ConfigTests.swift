import XCTest
import SpadeTestSupport
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
                       "config.yaml:1: key 'dataset_mode': 'coco' is not supported (must be one of 'synthetic', 'custom', 'cityscapes', 'ade20k', 'classified_tiles')")
        let normG = configError { _ = try TrainConfig.parse(yaml: "norm_G: spectralspadeinstance3x3", source: "config.yaml") }
        XCTAssert(normG.hasPrefix("config.yaml:1: key 'norm_G': 'spectralspadeinstance3x3' is not supported (must be one of 'spectralspadesyncbatch3x3', 'spectralspadebatch3x3'): spade-dist implements only"), normG)
        XCTAssert(configError { _ = try TrainConfig.parse(yaml: "norm_D: spectralbatch") }.contains("key 'norm_D': 'spectralbatch' is not supported (must be 'spectralinstance')"))
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "gan_mode: lsgan", source: "c.yaml") },
                       "c.yaml:1: key 'gan_mode': 'lsgan' is not supported (must be one of 'hinge', 'ls', 'original', 'w')")
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

    /// NVlabs create_optimizers uses (opt.beta1, opt.beta2) with or without TTUR; no_TTUR only
    /// changes their defaults (train_options.py) and the learning rates.
    func testNVlabsBetasWithAndWithoutTTUR() throws {
        let ttur = TrainConfig()
        XCTAssertEqual([ttur.beta1, ttur.beta2], [0, 0.9])
        let plain = try TrainConfig.load(path: nil, overrides: ["no_TTUR=true"])
        XCTAssertEqual([plain.beta1, plain.beta2], [0.5, 0.999])
        let given = try TrainConfig.load(path: nil, overrides: ["no_TTUR=true", "beta1=0.1"])
        XCTAssertEqual([given.beta1, given.beta2], [0.1, 0.999])
        let tturGiven = try TrainConfig.parse(yaml: "beta1: 0.5\nbeta2: 0.999")
        XCTAssertFalse(tturGiven.no_TTUR)
        XCTAssertEqual([tturGiven.beta1, tturGiven.beta2], [0.5, 0.999])
        XCTAssertEqual(tturGiven.learningRates(epoch: 1).g, 0.0001)   // TTUR still halves G's lr
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["beta2=1"]) },
                       "--set: key 'beta2': 1.0 is out of range (must be [0, 1))")
    }

    func testGANModes() throws {
        XCTAssertEqual(TrainConfig().modelConfig.ganMode, .hinge)
        for mode in ["ls", "original", "w", "hinge"] {
            let c = try TrainConfig.load(path: nil, overrides: ["gan_mode=\(mode)"])
            XCTAssertEqual(c.modelConfig.ganMode.rawValue, mode)
            XCTAssertEqual(try TrainConfig.parse(yaml: c.yaml()), c)
        }
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["gan_mode=wgan-gp"]) },
                       "--set: key 'gan_mode': 'wgan-gp' is not supported (must be one of 'hinge', 'ls', 'original', 'w')")
    }

    // MARK: label_colors

    static let rgbCustom = "dataset_mode: custom\ndataroot: d\nlabel_encoding: rgb\nlabel_nc: 3\n"

    func testLabelColorsParseFromYAMLAndSet() throws {
        let c = try TrainConfig.parse(yaml: Self.rgbCustom + "label_colors: [[0, 0, 0], [128, 64, 128], [255, 255, 0]]")
        XCTAssertEqual(c.label_colors, [[0, 0, 0], [128, 64, 128], [255, 255, 0]])
        XCTAssertEqual(c.datasetOptions.labelColors, c.label_colors)
        XCTAssert(c.yaml().contains("\nlabel_colors: [[0, 0, 0], [128, 64, 128], [255, 255, 0]]\n"), c.yaml())
        XCTAssertEqual(try TrainConfig.parse(yaml: c.yaml()), c)
        let block = try TrainConfig.parse(yaml: Self.rgbCustom + "label_colors:\n  - [1, 2, 3]\n  - [4, 5, 6]\n")
        XCTAssertEqual(block.label_colors, [[1, 2, 3], [4, 5, 6]])
        let set = try TrainConfig.load(path: nil, overrides: ["dataset_mode=custom", "dataroot=d", "label_encoding=rgb",
                                                              "label_colors=[[9, 9, 9], [0, 0, 255]]"])
        XCTAssertEqual(set.label_colors, [[9, 9, 9], [0, 0, 255]])
        XCTAssertEqual(TrainConfig().label_colors, [])
        XCTAssert(TrainConfig().yaml().contains("\nlabel_colors: []\n"))
        // With contain_dontcare_label one more colour: entry label_nc is don't-care.
        let dontcare = try TrainConfig.parse(yaml: Self.rgbCustom + "contain_dontcare_label: true\nlabel_colors: [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]")
        XCTAssertEqual(dontcare.label_colors.count, 4)
    }

    func testBadLabelColorsNameTheKey() {
        func err(_ colors: String, _ extra: String = "") -> String {
            configError { _ = try TrainConfig.parse(yaml: Self.rgbCustom + extra + "label_colors: \(colors)", source: "c.yaml") }
        }
        XCTAssertEqual(err("red"), "c.yaml:5: key 'label_colors': expected a list of [r, g, b], got 'red'")
        XCTAssertEqual(err("[[0, 0, 0], 7]"), "c.yaml:5: key 'label_colors': entry 1 must be a list of integers [r, g, b], got '7'")
        XCTAssertEqual(err("[[0, 0, x]]"), "c.yaml:5: key 'label_colors': entry 0 must be a list of integers [r, g, b], got ['0', '0', 'x']")
        XCTAssertEqual(err("[[0, 0]]"), "c.yaml:5: key 'label_colors': entry 0 [0, 0] must have three values [r, g, b]")
        XCTAssertEqual(err("[[0, 0, 0], [0, 300, 0]]"), "c.yaml:5: key 'label_colors': entry 1 [0, 300, 0]: 300 is out of range (must be 0 ... 255)")
        XCTAssertEqual(err("[[0, -1, 0]]"), "c.yaml:5: key 'label_colors': entry 0 [0, -1, 0]: -1 is out of range (must be 0 ... 255)")
        XCTAssertEqual(err("[[1, 2, 3], [4, 5, 6], [1, 2, 3]]"), "c.yaml:5: key 'label_colors': entry 2 [1, 2, 3] repeats the colour of entry 0")
        XCTAssertEqual(err("[[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]"),
                       "c.yaml: key 'label_colors': 4 colours for label_nc 3 (a don't-care colour needs contain_dontcare_label)")
        XCTAssertEqual(err("[[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]", "contain_dontcare_label: true\n"),
                       "c.yaml: key 'label_colors': 5 colours for label_nc 3 + 1 don't-care")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: Self.rgbCustom, source: "c.yaml") },
                       "c.yaml: key 'label_colors': required when label_encoding is rgb with dataset_mode custom (one [r, g, b] per class id)")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "label_colors: [[0, 0, 0]]", source: "c.yaml") },
                       "c.yaml: key 'label_colors': has no effect with label_encoding index; set label_encoding: rgb to use it")
        XCTAssertEqual(configError { _ = try TrainConfig.parse(yaml: "label_encoding: rgb", source: "c.yaml") },
                       "c.yaml: key 'label_encoding': rgb needs label files; synthetic labels are class ids (use index)")
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["label_colors=[[1, 2, 3], [1, 2, 3]]"]) },
                       "--set: key 'label_colors': entry 1 [1, 2, 3] repeats the colour of entry 0")
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["label_colors=[[1, 2"]) },
                       "--set: key 'label_colors': expected a list of [r, g, b], got '[[1, 2'")
        // A config built in code is held to the same rules.
        var c = TrainConfig()
        c.label_colors = [[0, 0, 256]]
        XCTAssertEqual(configError { try c.validate() }, "key 'label_colors': entry 0 [0, 0, 256]: 256 is out of range (must be 0 ... 255)")
        // classified_tiles may take its colours from the .emd instead.
        XCTAssertNoThrow(try TrainConfig.parse(yaml: "dataset_mode: classified_tiles\ndataroot: t\nlabel_encoding: rgb"))
    }

    func testMaxDatasetSize() throws {
        XCTAssertEqual(TrainConfig().max_dataset_size, 0)
        XCTAssertEqual(TrainConfig().datasetOptions.maxDatasetSize, 0)
        XCTAssertEqual(try TrainConfig.load(path: nil, overrides: ["max_dataset_size=100"]).datasetOptions.maxDatasetSize, 100)
        XCTAssertEqual(configError { _ = try TrainConfig.load(path: nil, overrides: ["max_dataset_size=-1"]) },
                       "--set: key 'max_dataset_size': -1 is out of range (must be >= 0)")
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
        for assignments in [["seed=7"], ["no_TTUR=true", "beta1=0.25"], ["no_TTUR=true"], ["bucket_mb=0.5"], ["beta2=0.999"],
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

    func testMarkdownTableListsEveryKey() throws {
        let table = TrainConfig.markdownKeyTable()
        let rows = table.split(separator: "\n")
        XCTAssertEqual(rows.count, TrainConfig.keys.count + 2)
        XCTAssert(table.contains("| `crop_size` | int | `64` | >= 1 | 512 (base); 256 with dataset_mode custom, coco, ade20k |"), table)
        XCTAssert(table.contains("| `ngf` | int | `16` | >= 1 | 64 |"), table)   // no override: the value alone
        XCTAssert(table.contains("| 0.0 (base); 0.5 with no_TTUR |"), table)
        XCTAssert(table.contains("| `label_colors` | list of [r, g, b] | `[]` |"), table)
        XCTAssert(table.contains("| `gan_mode` | choice | `hinge` | hinge, ls, original, w | hinge |"), table)
        let batch = try XCTUnwrap(rows.first { $0.hasPrefix("| `batchSize`") })
        XCTAssert(batch.contains("per rank") && batch.contains("NVlabs' batchSize is the global batch"), String(batch))
        // Every NVlabs override says what it overrides.
        for spec in TrainConfig.keys where !spec.nvlabsOverrides.isEmpty {
            XCTAssert(spec.nvlabsText.hasPrefix("\(spec.nvlabsDefault!) (base); "), spec.nvlabsText)
        }
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

    /// Nesting as deep as a config may be long is an error, not a stack overflow (Yams composes
    /// recursively; fuzz/run.sh config found 2 KiB of `{`), through a file, `--set` and the
    /// length limit alike.
    func testDeeplyNestedOrHugeYAMLIsAnError() {
        let deep = "label_colors: " + String(repeating: "[", count: 30000) + String(repeating: "]", count: 30000)
        XCTAssertThrowsError(try TrainConfig.parse(yaml: deep, source: "deep.yaml")) { e in
            XCTAssert("\(e)".hasPrefix("deep.yaml:1: key 'label_colors': entry 0 must be a list"), "\(e)")
            XCTAssertLessThan("\(e)".count, 200)
        }
        var config = TrainConfig()
        XCTAssertThrowsError(try config.apply(assignment: "label_colors=" + String(repeating: "{a: ", count: 15000))) { e in
            XCTAssert(e is ConfigError, "\(e)")
        }
        let huge = "name: " + String(repeating: "x", count: TrainConfig.maxYAMLBytes)
        XCTAssertThrowsError(try TrainConfig.parse(yaml: huge, source: "huge.yaml")) { e in
            XCTAssert("\(e)".contains("a config is at most 64 KiB"), "\(e)")
        }
    }

    /// The inputs fuzz/run.sh config crashed on (fuzz/regressions/config), as the fuzz target
    /// reads them (YAML, then `--set` lines after a line `--set`): each is a ConfigError, or a
    /// config whose effective YAML parses back to itself.
    func testFuzzRegressions() throws {
        let dir = Fixtures.packageRoot + "/fuzz/regressions/config"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let data = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/" + name))
            let parts = String(decoding: data, as: UTF8.self).components(separatedBy: "\n--set\n")
            var config = TrainConfig()
            do {
                try config.apply(yaml: parts[0], source: name)
                for assignment in parts.dropFirst().flatMap({ $0.split(separator: "\n") }) {
                    try config.apply(assignment: String(assignment))
                }
                config.applyConditionalDefaults()
                try config.validate(source: name)
            } catch {
                XCTAssert(error is ConfigError, "\(name): \(error)")
                continue
            }
            XCTAssertEqual(try TrainConfig.parse(yaml: config.yaml()), config, name)
        }
    }
}
