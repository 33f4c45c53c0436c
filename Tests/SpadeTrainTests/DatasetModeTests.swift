import Foundation
import SpadeTestSupport
import XCTest
@testable import SpadeTrain

/// `dataset_mode: cityscapes` / `ade20k` in the config: a config that sets only the mode and
/// dataroot gets the options NVlabs' train.py and test.py end up with for that mode (recorded from
/// NVlabs' option parsers by tools/refgen/make_dataset_fixtures.py), explicit keys still win, and
/// the mode's own keys are checked.
final class DatasetModeTests: XCTestCase {
    func load(_ yaml: String, isTrain: Bool = true) throws -> TrainConfig {
        let path = FileManager.default.temporaryDirectory.path + "/spade-mode-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try TrainConfig.load(path: path, isTrain: isTrain)
    }

    func testModeDefaultsAreNVlabs() throws {
        for mode in ["cityscapes", "ade20k"] {
            let defaults = try XCTUnwrap(try Fixtures.meta("datasets/\(mode)_expected")["defaults"] as? [String: [String: Any]])
            for (phase, isTrain) in [("train", true), ("test", false)] {
                let nvlabs = try XCTUnwrap(defaults[phase])
                let c = try load("dataset_mode: \(mode)\ndataroot: data\n", isTrain: isTrain)
                let at = "\(mode), NVlabs \(phase).py"
                XCTAssertEqual(c.label_nc, nvlabs["label_nc"] as? Int, at)
                XCTAssertEqual(c.contain_dontcare_label, nvlabs["contain_dontcare_label"] as? Bool, at)
                XCTAssertEqual(c.no_instance, nvlabs["no_instance"] as? Bool, at)
                XCTAssertEqual(c.preprocess_mode, nvlabs["preprocess_mode"] as? String, at)
                XCTAssertEqual(c.load_size, nvlabs["load_size"] as? Int, at)
                XCTAssertEqual(c.crop_size, nvlabs["crop_size"] as? Int, at)
                XCTAssertEqual(c.aspect_ratio, nvlabs["aspect_ratio"] as? Double, at)
                XCTAssertEqual(c.num_upsampling_layers, nvlabs["num_upsampling_layers"] as? String, at)
                // NVlabs' batchSize is global (split over its GPUs); here it is per rank and not copied.
                XCTAssertEqual(c.batchSize, TrainConfig().batchSize, at)
                XCTAssertEqual(c.datasetOptions.datasetMode, mode)
            }
        }
        // Explicit keys win over the mode's defaults, from the file and from --set.
        let c = try load("dataset_mode: cityscapes\ndataroot: data\ncrop_size: 256\nno_instance: true\n")
        XCTAssertEqual([c.crop_size, c.load_size, c.label_nc], [256, 512, 35])
        XCTAssertTrue(c.no_instance)
        // The effective config (what checkpoints store) round-trips.
        XCTAssertEqual(try TrainConfig.parse(yaml: c.yaml()), c)
    }

    func testModeKeysAreChecked() throws {
        func error(_ yaml: String) -> String {
            do { _ = try load(yaml); return "" } catch { return "\(error)" }
        }
        XCTAssert(error("dataset_mode: cityscapes\n").contains("dataroot"))
        XCTAssert(error("dataset_mode: cityscapes\ndataroot: d\nlabel_dir: x\n").contains("label_dir"))
        XCTAssert(error("dataset_mode: ade20k\ndataroot: d\nno_instance: false\n").contains("no_instance"))
        XCTAssert(error("dataset_mode: cityscapes\ndataroot: d\nade20k_shift_labels: true\n").contains("ade20k_shift_labels"))
        XCTAssert(error("dataset_mode: ade20k\ndataroot: d\nade20k_shift_labels: true\ncontain_dontcare_label: false\n")
            .contains("ade20k_shift_labels"))
        XCTAssert(error("dataset_mode: ade20k\ndataroot: d\nphase: val\n").contains("phase"))
        XCTAssertEqual(error("dataset_mode: ade20k\ndataroot: d\nade20k_shift_labels: true\nphase: test\n"), "")
    }

    func testProgressCountsItemsOfOtherJobs() {
        var lines: [String] = []
        var now = 0.0
        let p = ProgressDisplay(totalSteps: 4, startStep: 0, imagesPerStep: 1, isTTY: false, everySteps: 1,
                                output: { lines.append($0) }, clock: { now })
        for k in 1...4 { now += 0.5; p.update(done: k, unit: "image") }
        XCTAssertEqual(lines.count, 4)
        XCTAssert(lines[1].hasSuffix("image 2/4 (50%) | 2.00 image/s | ETA 1s\n"), lines[1])
    }
}
