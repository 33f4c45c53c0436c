// `spade-dist generate --phase` over a generated Cityscapes tree (issue 20): NVlabs test.py's
// layout, the ranks of `mpirun -np 2` splitting the val split with every image written once and
// the same bytes as one rank, and bad trees stopped before anything is written.

import Foundation
import SpadeData
import SpadeTestSupport
import XCTest

final class PhaseGenerateTests: XCTestCase {
    /// The val split's samples in NVlabs' (natural) order: unpadded numbers included, a count that
    /// two ranks split unevenly.
    static let valStems = ["frankfurt_000000_1", "frankfurt_000000_10", "frankfurt_000000_000294",
                           "lindau_000000_000019", "lindau_000000_000020", "munster_000000_000019", "munster_000001_000019"]

    /// A tree in the official layout (train: 2 samples, val: `valStems`), a config that sets only
    /// the mode, the root and a tiny model, and a checkpoint trained for one step on it.
    static let scratch = SharedScratch(tag: "phase") { d in
        for (split, stems) in [("train", ["aachen_000000_000019", "aachen_000000_000020"]), ("val", valStems)] {
            for stem in stems {
                try writeSample(root: d + "/cityscapes", split: split, stem: stem, seed: stems.firstIndex(of: stem)!)
            }
        }
        try """
            name: city-tiny
            dataset_mode: cityscapes
            dataroot: \(d)/cityscapes
            crop_size: 64
            load_size: 64
            num_upsampling_layers: normal
            ngf: 8
            ndf: 8
            spade_hidden: 16
            batchSize: 1

            """.write(toFile: d + "/city.yaml", atomically: true, encoding: .utf8)
        let r = try E2E.run(["train", "--config", d + "/city.yaml", "--steps", "1", "--run-dir", d + "/run"])
        E2E.assertSuccess(r, "training one step on the cityscapes tree")
    }

    override class func tearDown() {
        scratch.remove()
        super.tearDown()
    }

    /// One sample: labelIds, 16-bit instanceIds, colour and polygon files, the leftImg8bit photo.
    static func writeSample(root: String, split: String, stem: String, seed: Int) throws {
        let city = String(stem.split(separator: "_")[0])
        let gt = "\(root)/gtFine/\(split)/\(city)", left = "\(root)/leftImg8bit/\(split)/\(city)"
        for dir in [gt, left] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let w = 48, h = 24
        let labels = (0..<(w * h)).map { UInt8([7, 11, 21, 23, 26][($0 % w / 12 + $0 / w / 8 + seed) % 5]) }
        try writePNG(path: "\(gt)/\(stem)_gtFine_labelIds.png", width: w, height: h, channels: 1, pixels: labels)
        try writePNG16(path: "\(gt)/\(stem)_gtFine_instanceIds.png", width: w, height: h,
                       pixels: labels.enumerated().map { UInt16($0.element) * 1000 + UInt16($0.offset % w / 16) })
        try writePNG(path: "\(gt)/\(stem)_gtFine_color.png", width: w, height: h, channels: 3,
                     pixels: [UInt8](repeating: 128, count: w * h * 3))
        try "{}\n".write(toFile: "\(gt)/\(stem)_gtFine_polygons.json", atomically: true, encoding: .utf8)
        try writePNG(path: "\(left)/\(stem)_leftImg8bit.png", width: w, height: h, channels: 3,
                     pixels: (0..<(w * h * 3)).map { UInt8(($0 * 7 + seed * 31) % 256) })
    }

    func work() throws -> String { try Self.scratch.path() }

    func generate(np: Int, out: String, in d: String) throws -> ProcessResult {
        let args = ["generate", "--checkpoint", d + "/run/checkpoints/latest.safetensors", "--config", d + "/city.yaml",
                    "--phase", "test", "--out", out]
        return np == 1 ? try E2E.run(args) : try E2E.mpi(np: np, args)
    }

    /// Relative path -> bytes of every file below `dir`.
    func contents(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = try XCTUnwrap(FileManager.default.enumerator(atPath: dir))
        while let f = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + f, isDirectory: &isDir), !isDir.boolValue {
                out[f] = FileManager.default.contents(atPath: dir + "/" + f)
            }
        }
        return out
    }

    func testTwoRanksWriteEachResultOnceAndTheSameBytesAsOne() throws {
        let d = try work()
        let one = d + "/out-np1", two = d + "/out-np2"
        let r1 = try generate(np: 1, out: one, in: d)
        E2E.assertSuccess(r1, "generate --phase test")
        let r2 = try generate(np: 2, out: two, in: d)
        E2E.assertSuccess(r2, "mpirun -np 2 generate --phase test")

        // NVlabs test.py's names: the image file's stem; one file per visual and sample.
        let names = Self.valStems.map { $0 + "_leftImg8bit" }
        var expected = Set(["index.html"])
        for v in ["input_label", "synthesized_image", "real_image"] {
            for n in names { expected.insert("images/\(v)/\(n).png") }
        }
        let files1 = try contents(one), files2 = try contents(two)
        XCTAssertEqual(Set(files1.keys), expected)
        XCTAssertEqual(Set(files2.keys), expected)
        for (path, bytes) in files1 { XCTAssertEqual(files2[path], bytes, "\(path) differs between 1 and 2 ranks") }
        for (path, bytes) in files1 where path.hasSuffix(".png") {
            let img = try decodeImage(Array(bytes), path: path)
            XCTAssertEqual([img.width, img.height, img.channels], [64, 32, 3], path)
        }
        // The ranks split the set: their counts add up to the samples (each written once).
        let counts = r2.stdout.split(separator: "\n").compactMap { line -> Int? in
            guard line.contains(" wrote the images of ") else { return nil }
            return Int(line.components(separatedBy: " wrote the images of ")[1].split(separator: " ")[0])
        }
        XCTAssertEqual(counts.sorted(), [3, 4], r2.output)
        // The page shows every sample's label, synthesized and real image, in the dataset's order.
        let page = try String(contentsOfFile: one + "/index.html", encoding: .utf8)
        var last = page.startIndex
        for n in names {
            for v in ["input_label", "synthesized_image", "real_image"] {
                XCTAssertEqual(page.components(separatedBy: "src=\"images/\(v)/\(n).png\"").count, 2, "\(v)/\(n) on the page")
            }
            let at = try XCTUnwrap(page.range(of: "<th colspan=\"3\">\(n)</th>"), n)
            XCTAssert(at.lowerBound > last, "\(n) out of order")
            last = at.lowerBound
        }
        // The input labels are test.py's: NVlabs' colour map over label_nc + 2 (35 from the mode).
        let ds = try Dataset(options: {
            var o = DatasetOptions()
            o.datasetMode = "cityscapes"; o.dataroot = d + "/cityscapes"; o.phase = "test"; o.labelNC = 35
            o.noInstance = false; o.preprocessMode = "fixed"; o.cropSize = 64; o.aspectRatio = 2; o.noFlip = true
            return o
        }())
        let b = try ds.makeBatch(indices: [0], epoch: 0)
        let label = try decodeImage(Array(try XCTUnwrap(files1["images/input_label/\(names[0]).png"])), path: names[0])
        XCTAssertEqual(label.rgb8(), nvlabsColorizedLabels(b.labels, labelNC: 35))
    }

    /// A copy of the scratch tree to break.
    func brokenTree(_ tag: String, _ breakIt: (String) throws -> Void) throws -> (root: String, config: String) {
        let d = try work(), root = d + "/broken-\(tag)"
        try FileManager.default.copyItem(atPath: d + "/cityscapes", toPath: root)
        try breakIt(root)
        let config = d + "/broken-\(tag).yaml"
        let text = try String(contentsOfFile: d + "/city.yaml", encoding: .utf8)
            .replacingOccurrences(of: "dataroot: \(d)/cityscapes", with: "dataroot: \(root)")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        return (root, config)
    }

    /// Exit 2 with one line on stderr naming `path` (under mpirun: named once, as BadInputCLITests
    /// expects of multi-rank user errors), and no output folder.
    func assertOneLineError(_ r: ProcessResult, naming path: String, out: String? = nil, mpi: Bool = false,
                            file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 2, r.output, file: file, line: line)
        if !mpi { XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr, file: file, line: line) }
        XCTAssertEqual(r.stderr.components(separatedBy: path).count - 1, 1, "stderr does not name \(path) once:\n\(r.stderr)",
                       file: file, line: line)
        XCTAssertFalse(r.output.contains("Fatal error"), r.output, file: file, line: line)
        if let out { XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(out) was written", file: file, line: line) }
    }

    func testMisPairedFileIsNamedBeforeAnyWork() throws {
        let d = try work()
        let (root, config) = try brokenTree("mispaired") { root in
            let dir = root + "/leftImg8bit/val/lindau"
            try FileManager.default.moveItem(atPath: dir + "/lindau_000000_000020_leftImg8bit.png",
                                             toPath: dir + "/lindau_000000_000021_leftImg8bit.png")
        }
        let label = root + "/gtFine/val/lindau/lindau_000000_000020_gtFine_labelIds.png"
        let out = d + "/out-mispaired"
        let args = ["generate", "--checkpoint", d + "/run/checkpoints/latest.safetensors", "--config", config,
                    "--phase", "test", "--out", out]
        assertOneLineError(try E2E.run(args), naming: label, out: out)
        assertOneLineError(try E2E.mpi(np: 2, args), naming: label, out: out, mpi: true)
        // Training reads the train split, which is intact; the val split is checked when trained on.
        let runDir = d + "/run-mispaired"
        assertOneLineError(try E2E.run(["train", "--config", config, "--set", "phase=test", "--steps", "1", "--run-dir", runDir]),
                           naming: label, out: runDir)
    }

    func testMissingSplitFolderIsNamed() throws {
        let d = try work()
        let (root, config) = try brokenTree("nosplit") { root in try FileManager.default.removeItem(atPath: root + "/leftImg8bit/val") }
        let out = d + "/out-nosplit"
        let r = try E2E.run(["generate", "--checkpoint", d + "/run/checkpoints/latest.safetensors", "--config", config,
                             "--phase", "test", "--out", out])
        assertOneLineError(r, naming: root + "/leftImg8bit/val", out: out)
    }
}
