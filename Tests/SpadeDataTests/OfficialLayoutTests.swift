import Foundation
import SafeTensors
import SpadeCore
import SpadeTestSupport
import XCTest
@testable import SpadeData

/// `dataset_mode: cityscapes` and `ade20k` on the small official trees of Tests/Fixtures/datasets
/// against what NVlabs' own CityscapesDataset / ADE20KDataset make of them
/// (tools/refgen/make_dataset_fixtures.py): the files and their order, and the label, instance,
/// edge, image and one-hot tensors, bit for bit.
final class OfficialLayoutTests: XCTestCase {
    static let root = Fixtures.directory + "/datasets"

    /// The options NVlabs' fixtures were made with (make_dataset_fixtures.py `city` / `ade`).
    static func cityscapes(phase: String = "train") -> DatasetOptions {
        var o = DatasetOptions()
        o.datasetMode = "cityscapes"
        o.dataroot = root + "/cityscapes"
        o.phase = phase
        o.labelNC = 35
        o.noInstance = false
        o.preprocessMode = "fixed"
        o.cropSize = 32
        o.loadSize = 32
        o.aspectRatio = 2
        o.noFlip = phase == "test"      // test.py: no flip
        return o
    }

    static func ade20k(phase: String = "train", shift: Bool = false) -> DatasetOptions {
        var o = DatasetOptions()
        o.datasetMode = "ade20k"
        o.dataroot = root + "/ADEChallengeData2016"
        o.phase = phase
        o.labelNC = 150
        o.containDontcareLabel = true
        o.noInstance = true
        o.ade20kShiftLabels = shift
        o.preprocessMode = "resize_and_crop"
        o.cropSize = 16
        o.loadSize = phase == "test" ? 16 : 24
        o.noFlip = phase == "test"
        return o
    }

    /// NVlabs' (label, image, instance) files of a fixture variant, relative to Tests/Fixtures/datasets.
    func expectedPaths(_ fixture: String, _ variant: String) throws -> [[String?]] {
        let meta = try Fixtures.meta("datasets/\(fixture)_expected")
        let v = try XCTUnwrap(meta[variant] as? [String: Any], variant)
        let paths = try XCTUnwrap(v["paths"] as? [[Any]], variant)
        return paths.map { $0.map { $0 as? String } }
    }

    func relative(_ files: [SampleFiles]) -> [[String?]] {
        let cut = Self.root.count + 1
        return files.map { [String($0.label.dropFirst(cut)), String($0.image.dropFirst(cut)), $0.instance.map { String($0.dropFirst(cut)) }] }
    }

    func testListingsEqualNVlabs() throws {
        var maxTwo = Self.cityscapes()
        maxTwo.maxDatasetSize = 2
        let cases: [(DatasetOptions, String, String)] = [
            (Self.cityscapes(), "cityscapes", "train"), (Self.cityscapes(phase: "test"), "cityscapes", "test"),
            (maxTwo, "cityscapes", "train_max2"),
            (Self.ade20k(), "ade20k", "train"), (Self.ade20k(phase: "test"), "ade20k", "test"),
        ]
        for (options, fixture, variant) in cases {
            let d = try Dataset(options: options)
            let expected = try expectedPaths(fixture, variant)
            XCTAssertFalse(expected.isEmpty)
            XCTAssertEqual(relative(d.files), expected, "\(fixture) \(variant)")
            // Results are named after the image file, as test.py names them.
            XCTAssertEqual((0..<d.count).map(d.name), expected.map { (($0[1]! as NSString).lastPathComponent as NSString).deletingPathExtension })
        }
    }

    /// Sample i of `variant` built by spade-dist with NVlabs' random draws (crop x, y, flip) in
    /// place of its own, or through `makeBatch` itself when the draws cannot matter (test phase).
    func batch(_ d: Dataset, _ i: Int, expected f: SafeTensorsFile, variant: String) throws -> Batch {
        if d.options.phase == "test" { return try d.makeBatch(indices: [i], epoch: 0) }
        let draws = try f.i64("\(variant).\(i).params")
        let raw = try d.loadRaw(i)
        var rng = SplitMix64(seed: 0)
        var plan = try planGeometry(width: raw.width, height: raw.height, options: d.options, rng: &rng)
        if d.options.preprocessMode.hasSuffix("crop") { plan.cropX = Int(draws[0]); plan.cropY = Int(draws[1]) }
        plan.flip = draws[2] != 0
        return try d.assemble([d.preprocess(raw, plan: plan)], indices: [i], epoch: 0)
    }

    func checkTensors(_ options: DatasetOptions, fixture: String, variant: String) throws {
        let f = try Fixtures.load("datasets/\(fixture)_expected")
        let d = try Dataset(options: options)
        XCTAssertEqual(d.count, try expectedPaths(fixture, variant).count)
        var flips = 0
        for i in 0..<d.count {
            let at = "\(fixture) \(variant) sample \(i) (\(d.name(i)))"
            let p = "\(variant).\(i)."
            let b = try batch(d, i, expected: f, variant: variant)
            XCTAssertEqual(try f.shape(p + "label"), [b.height, b.width], at)
            XCTAssertEqual(b.labels.map(Int64.init), try f.i64(p + "label"), "labels: " + at)
            XCTAssertEqual(b.image.map(\.bitPattern), try f.f(p + "image").map(\.bitPattern), "image: " + at)
            let hw = b.height * b.width
            if !options.noInstance {
                let edges = Array(b.semantics[((b.semanticNC - 1) * hw)...])
                XCTAssertEqual(edges, try f.f(p + "edges"), "edges: " + at)
                // 16-bit ids reach NVlabs as int16 (PIL mode I;16): compare them modulo 2^16.
                let raw = try d.loadRaw(i)
                var rng = SplitMix64(seed: 0)
                var plan = try planGeometry(width: raw.width, height: raw.height, options: options, rng: &rng)
                if options.phase != "test" { plan.flip = try f.i64(p + "params")[2] != 0 }
                let ids = try XCTUnwrap(d.preprocess(raw, plan: plan).instances)
                XCTAssertEqual(ids.map { Int64($0) & 0xFFFF }, try f.i64(p + "instance").map { $0 & 0xFFFF }, "instances: " + at)
            }
            if f.tensors[p + "semantics"] != nil {
                XCTAssertEqual(b.semantics, try f.f(p + "semantics"), "semantics: " + at)
            }
            if f.tensors[p + "colorized"] != nil {
                XCTAssertEqual(nvlabsColorizedLabels(b.labels, labelNC: options.labelNC).map(Int64.init),
                               try f.i64(p + "colorized"), "test.py's input_label: " + at)
            }
            if options.phase != "test", try f.i64(p + "params")[2] != 0 { flips += 1 }
        }
        if options.phase != "test" { XCTAssertGreaterThan(flips, 0, "\(fixture) \(variant): no flipped sample exercised") }
    }

    func testCityscapesTensorsEqualNVlabs() throws {
        try checkTensors(Self.cityscapes(), fixture: "cityscapes", variant: "train")
        try checkTensors(Self.cityscapes(phase: "test"), fixture: "cityscapes", variant: "test")
    }

    /// Raw ids 0...150 by default (what NVlabs feeds), the intended shift with ade20k_shift_labels.
    func testADE20KTensorsEqualNVlabs() throws {
        try checkTensors(Self.ade20k(), fixture: "ade20k", variant: "train")
        try checkTensors(Self.ade20k(phase: "test"), fixture: "ade20k", variant: "test")
        try checkTensors(Self.ade20k(shift: true), fixture: "ade20k", variant: "train_shift")
    }

    func testTensor2imEqualsNVlabs() throws {
        let f = try Fixtures.load("datasets/tensor2im_expected")
        let shape = try f.shape("input")   // [3, H, W]
        XCTAssertEqual(nvlabsImageBytes(try f.f("input"), index: 0, height: shape[1], width: shape[2]).map(Int64.init),
                       try f.i64("output"))
    }

    // MARK: bad trees

    /// A copy of a fixture tree to break.
    func copyTree(_ name: String) throws -> String {
        let dir = try makeTempDir(self) + "/" + name
        try FileManager.default.copyItem(atPath: Self.root + "/" + name, toPath: dir)
        return dir
    }

    func testMisPairedFileIsNamed() throws {
        let dir = try copyTree("cityscapes")
        let from = dir + "/leftImg8bit/train/aachen/aachen_000000_000101_leftImg8bit.png"
        let to = dir + "/leftImg8bit/train/aachen/aachen_000000_000102_leftImg8bit.png"
        try FileManager.default.moveItem(atPath: from, toPath: to)
        var o = Self.cityscapes()
        o.dataroot = dir
        let issues = prescan(o)
        // One line naming both files (NVlabs' assertion names the pair).
        XCTAssertEqual(issues.map(\.path), [dir + "/gtFine/train/aachen/aachen_000000_000101_gtFine_labelIds.png"], "\(issues)")
        XCTAssert(issues[0].problem.contains("has no image named aachen_000000_000101; the image without a label map is \(to)"), "\(issues)")
        // no_pairing_check pairs by position: the same tree is then accepted.
        o.noPairingCheck = true
        XCTAssertEqual(prescan(o), [])
    }

    func testMissingSplitFolderIsNamed() throws {
        let dir = try copyTree("cityscapes")
        try FileManager.default.removeItem(atPath: dir + "/leftImg8bit/val")
        var o = Self.cityscapes(phase: "test")
        o.dataroot = dir
        let issues = prescan(o)
        XCTAssertEqual(issues.map(\.path), [dir + "/leftImg8bit/val"])
        XCTAssert(issues[0].problem.contains("directory does not exist"), "\(issues)")
        XCTAssertThrowsError(try Dataset(options: o))
    }

    func testUnreadableAndMissingADE20KFilesAreNamed() throws {
        let dir = try copyTree("ADEChallengeData2016")
        let label = dir + "/annotations/training/ADE_train_00000010.png"
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: label))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: label))
        let image = dir + "/images/training/ADE_train_00000011.jpg"
        try FileManager.default.removeItem(atPath: image)
        var o = Self.ade20k()
        o.dataroot = dir
        let lonely = prescan(o)
        XCTAssertEqual(lonely.map(\.path), [dir + "/annotations/training/ADE_train_00000011.png"])
        XCTAssert(lonely[0].problem.contains("no image for this label map"), "\(lonely)")
        try FileManager.default.copyItem(atPath: Self.root + "/ADEChallengeData2016/images/training/ADE_train_00000011.jpg", toPath: image)
        let issues = prescan(o)
        XCTAssertEqual(issues.map(\.path), [label], "\(issues)")
        XCTAssert(issues[0].problem.contains("PNG"), "\(issues)")
    }

    /// ADE20K's ids run to label_nc (150) by default: without the don't-care channel they do not fit.
    func testADE20KOptionsAreChecked() throws {
        var o = Self.ade20k()
        o.containDontcareLabel = false
        XCTAssert(prescan(o).contains { $0.problem.contains("class id 150 >= label_nc 150") }, "\(prescan(o))")
        o.ade20kShiftLabels = true
        XCTAssertEqual(prescan(o).map(\.path), ["ade20k_shift_labels"])
        o = Self.ade20k()
        o.noInstance = false
        XCTAssertEqual(prescan(o).map(\.path), ["no_instance"])
        o = Self.ade20k()
        o.dataroot = Self.root + "/missing"
        XCTAssertEqual(prescan(o).map(\.path), [Self.root + "/missing"])
    }
}
