import Foundation
import XCTest
import SpadeCore
@testable import SpadeData

final class DatasetTests: XCTestCase {
    func testCustomLayoutWithSixteenBitInstances() throws {
        let dir = try makeTempDir(self)
        try writeSmallCustomDataset(dir, count: 4, size: 32)
        let inst = try readImage(path: "\(dir)/train_inst/00000.png")
        XCTAssertEqual(inst.bitDepth, 16)
        XCTAssertTrue(inst.indexValues()!.contains { $0 > 255 })  // ids like 2000, 3001
        var o = customOptions(dir)
        o.noInstance = false
        XCTAssertEqual(o.semanticNC, 9)
        XCTAssertEqual(prescan(o, globalBatch: 4), [])
        let ds = try Dataset(options: o)
        XCTAssertEqual(ds.files.map(\.name), ["00000", "00001", "00002", "00003"])
        XCTAssertEqual(ds.files[0].instance, "\(dir)/train_inst/00000.png")
        let b = try ds.makeBatch(indices: [1], epoch: 0)
        let hw = 32 * 32
        let raw = try ds.loadRaw(1)
        let edges = instanceEdges(raw.instances!, height: 32, width: 32)
        XCTAssertEqual(Array(b.semantics[(8 * hw)..<(9 * hw)]), edges)
        XCTAssertTrue(edges.contains(1))
        // Same scene as generated in memory.
        let scenes = SyntheticScenes(seed: 1, classes: 8, width: 32, height: 32)
        let g = scenes.generate(index: 1)
        XCTAssertEqual(raw.labels, g.labels)
        XCTAssertEqual(raw.image, g.image)
        XCTAssertEqual(raw.instances, g.instances)
    }

    func testCustomDefaultsAndJPEGImages() throws {
        let dir = try makeTempDir(self)
        try mkdir("\(dir)/train_label"); try mkdir("\(dir)/train_img")
        let s = SyntheticScenes(seed: 3, classes: 5, width: 16, height: 16).generate(index: 0)
        try writePNG(path: "\(dir)/train_label/a.png", width: 16, height: 16, channels: 1, pixels: s.labels.map { UInt8($0) })
        try writeBytes("\(dir)/train_img/a.jpg", try encodeJPEG(width: 16, height: 16, channels: 3, pixels: s.image, quality: 95))
        let o = customOptions(dir, labelNC: 5, size: 16)
        XCTAssertEqual(o.resolvedLabelDir, "\(dir)/train_label")
        XCTAssertEqual(o.resolvedImageDir, "\(dir)/train_img")
        XCTAssertEqual(prescan(o), [])
        let b = try Dataset(options: o).makeBatch(indices: [0], epoch: 0)
        XCTAssertEqual(b.labels, s.labels)
    }

    func testPaletteLabelsAndRGBEncoding() throws {
        let dir = try makeTempDir(self)
        try mkdir("\(dir)/train_label"); try mkdir("\(dir)/train_img")
        // Palette PNG label: the class is the palette index, whatever its colour.
        let palette: [UInt8] = [255, 255, 255, 0, 0, 0, 9, 9, 9]
        let idx: [UInt8] = [2, 1, 0, 2]
        try writeBytes("\(dir)/train_label/x.png", palettePNG(width: 2, height: 2, indices: idx, palette: palette))
        try writePNG(path: "\(dir)/train_img/x.png", width: 2, height: 2, channels: 3, pixels: [UInt8](repeating: 128, count: 12))
        var o = customOptions(dir, labelNC: 3, size: 2)
        o.preprocessMode = "fixed"
        XCTAssertEqual(prescan(o), [])
        XCTAssertEqual(try Dataset(options: o).makeBatch(indices: [0], epoch: 0).labels, [2, 1, 0, 2])
        // rgb encoding: an RGB label image mapped through label_colors.
        let rgb: [UInt8] = [0, 0, 255, 255, 0, 0, 0, 255, 0, 0, 0, 255]
        try writePNG(path: "\(dir)/train_label/x.png", width: 2, height: 2, channels: 3, pixels: rgb)
        o.labelEncoding = "rgb"
        o.labelColors = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
        XCTAssertEqual(prescan(o), [])
        XCTAssertEqual(try Dataset(options: o).makeBatch(indices: [0], epoch: 0).labels, [2, 0, 1, 2])
        o.labelColors = [[255, 0, 0], [0, 255, 0]]
        let issues = prescan(o)
        XCTAssertEqual(issues.count, 1)
        XCTAssertTrue(issues[0].description.contains("x.png: colour (0, 0, 255)"), "\(issues)")
        // An RGB label with index encoding is rejected with a hint.
        o.labelEncoding = "index"
        XCTAssertTrue(prescan(o).first?.problem.contains("label_encoding: rgb") ?? false)
    }

    /// label_colors: index = class id, the entry after the classes is don't-care (with
    /// contain_dontcare_label); a colour no entry has is one line naming file, colours and pixels.
    func testRGBLabelsThroughLabelColors() throws {
        let dir = try makeTempDir(self)
        try mkdir("\(dir)/train_label"); try mkdir("\(dir)/train_img")
        let black: [UInt8] = [0, 0, 0], road: [UInt8] = [128, 64, 128], sky: [UInt8] = [70, 130, 180], void: [UInt8] = [255, 255, 255]
        let label = [road, black, sky, void, sky, road].flatMap { $0 }
        try writePNG(path: "\(dir)/train_label/a.png", width: 3, height: 2, channels: 3, pixels: label)
        try writePNG(path: "\(dir)/train_img/a.png", width: 3, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 18))
        var o = customOptions(dir, labelNC: 3, size: 3)
        o.preprocessMode = "none"
        o.aspectRatio = 1.5
        o.labelEncoding = "rgb"
        o.containDontcareLabel = true
        o.labelColors = [black, road, sky, void].map { $0.map(Int.init) }
        XCTAssertEqual(prescan(o), [])
        let ds = try Dataset(options: o)
        XCTAssertEqual(try ds.loadRaw(0).labels, [1, 0, 2, 255, 2, 1])
        let batch = try ds.makeBatch(indices: [0], epoch: 0)
        XCTAssertEqual(batch.labels, [1, 0, 2, 3, 2, 1])                  // don't-care -> channel label_nc
        XCTAssertEqual(Array(batch.semantics[(3 * 6)..<(4 * 6)]), [0, 0, 0, 1, 0, 0])

        // Without the white entry: white (1 pixel) is not a class colour.
        o.labelColors.removeLast()
        XCTAssertEqual(prescan(o), [DataIssue(path: "\(dir)/train_label/a.png",
                                              problem: "colour (255, 255, 255) in 1 pixel is not in label_colors")])
        // Several unknown colours: most frequent first, pixel counts, one line.
        o.labelColors = [black].map { $0.map(Int.init) }
        XCTAssertThrowsError(try Dataset(options: o).loadRaw(0)) { error in
            XCTAssertEqual((error as? DataError)?.message,
                           "\(dir)/train_label/a.png: colours (70, 130, 180) in 2 pixels, (128, 64, 128) in 2 pixels, (255, 255, 255) in 1 pixel are not in label_colors")
        }
        // DatasetOptions itself rejects a repeated colour and too many colours, naming the key.
        o.labelColors = [[1, 2, 3], [1, 2, 3]]
        XCTAssertThrowsError(try o.validate()) { error in
            XCTAssertEqual((error as? DataError)?.message, "label_colors: entry 1 [1, 2, 3] repeats the colour of entry 0")
        }
        o.labelColors = (0..<5).map { [$0, 0, 0] }
        XCTAssertThrowsError(try o.validate()) { error in
            XCTAssertEqual((error as? DataError)?.message, "label_colors: 5 colours for label_nc 3 + 1 don't-care")
        }
    }

    /// NVlabs pix2pix_dataset.py: paths[:max_dataset_size] after sorting; the rest is never read.
    func testMaxDatasetSizeKeepsTheFirstSortedSamples() throws {
        let dir = try makeTempDir(self)
        try writeSmallCustomDataset(dir, count: 5, size: 32)
        try writeBytes("\(dir)/train_img/00004.png", [1, 2, 3])          // corrupt, but past the limit
        var o = customOptions(dir)
        XCTAssertEqual(prescan(o).map(\.path), ["\(dir)/train_img/00004.png"])
        o.maxDatasetSize = 3
        XCTAssertEqual(prescan(o, globalBatch: 3), [])
        XCTAssertEqual(prescan(o, globalBatch: 4).map(\.problem), ["3 samples cannot fill one global batch of 4 (batchSize x ranks)"])
        let ds = try Dataset(options: o)
        XCTAssertEqual(ds.count, 3)
        XCTAssertEqual(ds.files.map(\.name), ["00000", "00001", "00002"])
        o.maxDatasetSize = 50                                               // more than there are: all
        XCTAssertEqual(try Dataset(options: o).count, 5)
        // Synthetic: the first N scenes.
        var synth = DatasetOptions()
        synth.syntheticCount = 16
        synth.maxDatasetSize = 4
        XCTAssertEqual(try Dataset(options: synth).count, 4)
    }

    func testDontcareLabels() throws {
        let dir = try makeTempDir(self)
        try mkdir("\(dir)/train_label"); try mkdir("\(dir)/train_img")
        try writePNG(path: "\(dir)/train_label/a.png", width: 2, height: 1, channels: 1, pixels: [255, 1])
        try writePNG(path: "\(dir)/train_img/a.png", width: 2, height: 1, channels: 3, pixels: [0, 0, 0, 255, 255, 255])
        var o = customOptions(dir, labelNC: 2, size: 2)
        o.preprocessMode = "fixed"
        o.aspectRatio = 2
        o.containDontcareLabel = true
        XCTAssertEqual(o.semanticNC, 3)
        let b = try Dataset(options: o).makeBatch(indices: [0], epoch: 0)
        XCTAssertEqual(b.labels, [2, 1])
        XCTAssertEqual(b.semantics, [0, 0, 0, 1, 1, 0])  // (C=3, H=1, W=2)
        XCTAssertEqual(b.image, [-1, 1, -1, 1, -1, 1])
    }

    func writeTiles(_ root: String, count: Int, withMap: Bool, emdClasses: String? = nil, mode: String = "Classified_Tiles") throws {
        try mkdir("\(root)/images"); try mkdir("\(root)/labels")
        let scenes = SyntheticScenes(seed: 5, classes: 6, width: 24, height: 24)
        var map = ""
        for i in 0..<count {
            let name = String(format: "%09d", i)
            let s = scenes.generate(index: i)
            // ArcGIS class values start at 1 (0 = NoData): store class + 1.
            try writePNG(path: "\(root)/labels/\(name).png", width: 24, height: 24, channels: 1, pixels: s.labels.map { UInt8($0 + 1) })
            try writeBytes("\(root)/images/\(name).jpg", try encodeJPEG(width: 24, height: 24, channels: 3, pixels: s.image))
            try writeBytes("\(root)/images/\(name).jgw", Array("0.5\n0\n0\n-0.5\n100\n200\n".utf8))  // world file: ignored
            map += "images\\\(name).jpg labels\\\(name).png\n"
        }
        if withMap { try writeBytes("\(root)/map.txt", Array(map.utf8)) }
        let classes = emdClasses ?? (1...6).map { "{\"Value\": \($0), \"Name\": \"c\($0)\", \"Color\": [\($0 * 30), 0, 0]}" }.joined(separator: ",")
        let emd = "{\"Framework\": \"\", \"MetaDataMode\": \"\(mode)\", \"ImageHeight\": 24, \"ImageWidth\": 24, \"Classes\": [\(classes)]}"
        try writeBytes("\(root)/esri_model_definition.emd", Array(emd.utf8))
        try writeBytes("\(root)/esri_accumulated_stats.json", Array("{\"MetaDataMode\": \"\(mode)\", \"NumTiles\": \(count), \"TileSizeX\": 24}".utf8))
        try writeBytes("\(root)/stats.txt", Array("NumTiles: \(count)\n".utf8))
    }

    func tileOptions(_ root: String) -> DatasetOptions {
        var o = DatasetOptions()
        o.datasetMode = "classified_tiles"
        o.dataroot = root
        o.labelNC = 7
        o.noInstance = true
        o.preprocessMode = "none"
        o.cropSize = 24
        o.loadSize = 24
        o.noFlip = true
        return o
    }

    func testArcGISClassifiedTiles() throws {
        for withMap in [true, false] {
            let root = try makeTempDir(self, "tiles\(withMap)")
            try writeTiles(root, count: 5, withMap: withMap)
            let o = tileOptions(root)
            XCTAssertEqual(prescan(o, globalBatch: 4), [], "map \(withMap)")
            let ds = try Dataset(options: o)
            XCTAssertEqual(ds.count, 5)
            XCTAssertEqual(ds.esriClasses.map(\.name), ["c1", "c2", "c3", "c4", "c5", "c6"])
            XCTAssertEqual(ds.files[2].label, "\(root)/labels/000000002.png")
            XCTAssertEqual(ds.files[2].image, "\(root)/images/000000002.jpg")
            let b = try ds.makeBatch(indices: [2], epoch: 0)
            let g = SyntheticScenes(seed: 5, classes: 6, width: 24, height: 24).generate(index: 2)
            XCTAssertEqual(b.labels, g.labels.map { $0 + 1 })
        }
    }

    func testArcGISMetadataChecks() throws {
        let root = try makeTempDir(self)
        try writeTiles(root, count: 2, withMap: true)
        var o = tileOptions(root)
        o.labelNC = 6  // class value 6 needs label_nc >= 7
        let issues = prescan(o)
        XCTAssertTrue(issues.contains { $0.path.hasSuffix("esri_model_definition.emd") && $0.problem.contains("value 6 >= label_nc 6") }, "\(issues)")
        XCTAssertTrue(issues.contains { $0.path.hasPrefix("\(root)/labels/") && $0.problem.contains("class id 6 >= label_nc 6") }, "\(issues)")
        let root2 = try makeTempDir(self, "pascal")
        try writeTiles(root2, count: 1, withMap: true, mode: "PASCAL_VOC_rectangles")
        XCTAssertTrue(prescan(tileOptions(root2)).contains { $0.problem.contains("MetaDataMode is 'PASCAL_VOC_rectangles'") })
        // map.txt naming a missing tile.
        try FileManager.default.removeItem(atPath: "\(root)/images/000000001.jpg")
        XCTAssertTrue(prescan(tileOptions(root)).contains { $0.path == "\(root)/images/000000001.jpg" && $0.problem.contains("listed in") })
    }

    func testArcGISRGBLabelsThroughEmdColours() throws {
        let root = try makeTempDir(self)
        try writeTiles(root, count: 1, withMap: true)
        // Replace the label by its colours from the emd (value v -> [30 v, 0, 0]).
        let g = SyntheticScenes(seed: 5, classes: 6, width: 24, height: 24).generate(index: 0)
        let rgb = g.labels.flatMap { [UInt8(($0 + 1) * 30), 0, 0] }
        try writePNG(path: "\(root)/labels/000000000.png", width: 24, height: 24, channels: 3, pixels: rgb)
        var o = tileOptions(root)
        o.labelEncoding = "rgb"
        XCTAssertEqual(prescan(o), [])
        XCTAssertEqual(try Dataset(options: o).makeBatch(indices: [0], epoch: 0).labels, g.labels.map { $0 + 1 })
    }

    func testSyntheticMode() throws {
        var o = DatasetOptions()
        o.datasetMode = "synthetic"
        o.syntheticCount = 16
        o.cropSize = 64
        o.preprocessMode = "none"
        o.noFlip = true
        o.seed = 11
        XCTAssertEqual(prescan(o, globalBatch: 16), [])
        XCTAssertEqual(prescan(o, globalBatch: 32).count, 1)
        let ds = try Dataset(options: o)
        let b = try ds.makeBatch(indices: Array(0..<16), epoch: 0)
        XCTAssertEqual(b.names[3], "synth_00003")
        // Deterministic and seed dependent.
        XCTAssertEqual(try ds.makeBatch(indices: [3], epoch: 0).image, Array(b.image[(3 * 3 * 4096)..<(4 * 3 * 4096)]))
        o.seed = 12
        XCTAssertNotEqual(try Dataset(options: o).makeBatch(indices: [3], epoch: 0).labels, Array(b.labels[(3 * 4096)..<(4 * 4096)]))
        // At least six classes appear, sky mostly on top.
        XCTAssertGreaterThanOrEqual(Set(b.labels).count, 6)
        var skyTop = 0, skyBottom = 0
        for k in 0..<16 { for y in 0..<64 { for x in 0..<64 where b.labels[k * 4096 + y * 64 + x] == 0 { if y < 32 { skyTop += 1 } else { skyBottom += 1 } } } }
        XCTAssertGreaterThan(skyTop, 10 * skyBottom)
        // The images are recognisable from their labels by colour.
        for k in 0..<16 {
            let acc = resegmentationAccuracy(image: Array(b.image[(k * 3 * 4096)..<((k + 1) * 3 * 4096)]),
                                             labels: Array(b.labels[(k * 4096)..<((k + 1) * 4096)]), height: 64, width: 64, classes: 8)
            XCTAssertGreaterThan(acc, 0.9, "sample \(k)")
        }
        // Noise is not.
        var rng = SplitMix64(seed: 1)
        let noise = (0..<(3 * 4096)).map { _ in Float(rng.unit() * 2 - 1) }
        XCTAssertLessThan(resegmentationAccuracy(image: noise, labels: Array(b.labels[0..<4096]), classes: 8), 0.4)
    }

    func testColorize() {
        let rgb = colorize([0, 1, 8, 3], dontcare: 3)
        XCTAssertEqual(Array(rgb[0..<3]), SyntheticScenes.classColors[0])
        XCTAssertEqual(Array(rgb[3..<6]), SyntheticScenes.classColors[1])
        XCTAssertEqual(Array(rgb[6..<9]), paletteColor(8))
        XCTAssertEqual(Array(rgb[9..<12]), [0, 0, 0])
        XCTAssertEqual(paletteColor(9), [192, 0, 0])  // Pascal VOC colour map
    }
}
