import Foundation
import SpadeTrain
import XCTest

/// configs/*.yaml and README.md against the code: every preset parses and validates
/// (data is checked at train time, not here), and the README's key table is the one
/// `TrainConfig.markdownKeyTable()` generates, so neither can go stale.
final class PresetTests: XCTestCase {
    /// The package root (this file is Tests/SpadeTrainTests/PresetTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let configsDir = root.appendingPathComponent("configs")
    static let expectedPresets = ["tiny", "landcover", "cityscapes", "ade20k", "coco-stuff", "small-128"]

    /// The YAML files of configs/ (sorted).
    func configFiles() throws -> [URL] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.configsDir.path)
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
            .map { Self.configsDir.appendingPathComponent($0) }
    }

    func load(_ preset: String) throws -> TrainConfig {
        try TrainConfig.load(path: Self.configsDir.appendingPathComponent("\(preset).yaml").path)
    }

    func testEveryConfigFileParsesAndValidates() throws {
        let files = try configFiles()
        XCTAssertFalse(files.isEmpty, "no configs/*.yaml")
        for file in files {
            do {
                let config = try TrainConfig.load(path: file.path)
                try config.validate(source: file.path)
                // name = file name, so runs/<name> says which preset produced a run.
                XCTAssertEqual(config.name, file.deletingPathExtension().lastPathComponent, file.lastPathComponent)
                // The effective config round-trips (it is what checkpoints store).
                XCTAssertEqual(try TrainConfig.parse(yaml: config.yaml()), config, file.lastPathComponent)
            } catch {
                XCTFail("\(file.lastPathComponent): \(error)")
            }
        }
    }

    func testThePresetsTheREADMEPromisesExist() throws {
        let stems = Set(try configFiles().map { $0.deletingPathExtension().lastPathComponent })
        for preset in Self.expectedPresets { XCTAssert(stems.contains(preset), "configs/\(preset).yaml is missing") }
    }

    /// configs/tiny.yaml is the embedded default written out, every key included.
    func testTinyIsTheEmbeddedDefaultAndListsEveryKey() throws {
        let path = Self.configsDir.appendingPathComponent("tiny.yaml").path
        XCTAssertEqual(try TrainConfig.load(path: path), TrainConfig())
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let listed = Set(text.split(separator: "\n").compactMap { line -> String? in
            guard !line.hasPrefix("#"), !line.hasPrefix(" "), let colon = line.firstIndex(of: ":") else { return nil }
            return String(line[..<colon])
        })
        for spec in TrainConfig.keys { XCTAssert(listed.contains(spec.name), "configs/tiny.yaml does not list \(spec.name)") }
    }

    func testDatasetPresetsMatchNVlabs() throws {
        let city = try load("cityscapes")
        XCTAssertEqual([city.imageWidth, city.imageHeight], [512, 256])
        XCTAssertEqual(city.num_upsampling_layers, "more")
        XCTAssertEqual(city.label_nc, 35)
        XCTAssertFalse(city.contain_dontcare_label)
        XCTAssertFalse(city.no_instance)
        XCTAssertEqual(city.preprocess_mode, "fixed")
        XCTAssertEqual(city.semanticChannels, 36)

        let ade = try load("ade20k")
        XCTAssertEqual([ade.imageWidth, ade.imageHeight], [256, 256])
        XCTAssertEqual([ade.load_size, ade.label_nc], [286, 150])
        XCTAssertTrue(ade.contain_dontcare_label)
        XCTAssertTrue(ade.no_instance)
        XCTAssertEqual(ade.preprocess_mode, "resize_and_crop")
        XCTAssertEqual(ade.semanticChannels, 151)

        let coco = try load("coco-stuff")
        XCTAssertEqual([coco.imageWidth, coco.imageHeight, coco.load_size, coco.label_nc], [256, 256, 286, 182])
        XCTAssertTrue(coco.contain_dontcare_label)
        XCTAssertFalse(coco.no_instance)
        XCTAssertEqual(coco.semanticChannels, 184)

        // NVlabs model sizes, so NVlabs weights convert and load (spade_hidden: NVlabs hard-codes 128).
        for c in [city, ade, coco] {
            XCTAssertEqual([c.ngf, c.ndf, c.spade_hidden, c.n_layers_D, c.num_D], [64, 64, 128, 4, 2], c.name)
            XCTAssertEqual(c.steps, 0, "\(c.name): length in NVlabs epochs")
        }
        // Cityscapes and ADE20K are read in their official layouts; COCO-Stuff's NVlabs layout is custom's.
        XCTAssertEqual([city.dataset_mode, ade.dataset_mode, coco.dataset_mode], ["cityscapes", "ade20k", "custom"])
        XCTAssertFalse(ade.ade20k_shift_labels, "NVlabs feeds ADE20K's raw ids")
    }

    func testLandcoverIsTheSeedBlogSetting() throws {
        let c = try load("landcover")
        XCTAssertEqual(c.dataset_mode, "classified_tiles")
        XCTAssertEqual([c.imageWidth, c.imageHeight], [256, 256])
        XCTAssertEqual(c.d_steps_per_g, 5)
        XCTAssertEqual(c.label_nc, 7)   // ArcGIS class Values 1...6, 0 = NoData
        XCTAssertTrue(c.no_instance)
        XCTAssertFalse(c.dataroot.isEmpty)
    }

    func testSmall128RunsOutOfTheBox() throws {
        let c = try load("small-128")
        XCTAssertEqual([c.imageWidth, c.imageHeight], [128, 128])
        XCTAssertEqual(c.dataset_mode, "synthetic")   // trains without any data to download
        XCTAssertLessThan(c.ngf, 64)
    }

    /// README.md's key table is exactly the generated one (this test does not skip when
    /// the markers are missing; ConfigTests.testREADMEKeyTableIsCurrent can rewrite it).
    func testREADMEKeyTableMatchesTheCode() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let begin = "<!-- config-keys:begin -->", end = "<!-- config-keys:end -->"
        guard let b = text.range(of: begin), let e = text.range(of: end), b.upperBound <= e.lowerBound else {
            return XCTFail("README.md lacks \(begin) ... \(end)")
        }
        XCTAssertEqual(String(text[b.upperBound..<e.lowerBound]), "\n" + TrainConfig.markdownKeyTable(),
                       "README.md's config table is stale; rerun with SPADE_UPDATE_README=1 (ConfigTests)")
        for spec in TrainConfig.keys {
            XCTAssert(text.contains("| `\(spec.name)`"), "README.md does not list \(spec.name)")
        }
    }

    /// The README starts with the two set-up commands, and they exist.
    func testREADMEStartsWithTheTwoCommands() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let firstBlock = text.components(separatedBy: "```").dropFirst().first ?? ""
        XCTAssert(firstBlock.contains("launch/train.sh"), "README's first code block: \(firstBlock)")
        XCTAssert(firstBlock.contains("launch/test.sh"), "README's first code block: \(firstBlock)")
        for script in ["launch/train.sh", "launch/test.sh", "launch/setup.sh", "launch/run-node.sh",
                       "launch/slurm.sbatch", ".ci/run"] {
            let path = Self.root.appendingPathComponent(script).path
            XCTAssert(FileManager.default.isExecutableFile(atPath: path), "\(script) missing or not executable")
        }
        for preset in Self.expectedPresets {
            XCTAssert(text.contains("configs/\(preset).yaml"), "README.md does not mention configs/\(preset).yaml")
        }
    }
}
