import Foundation
import XCTest
import SpadeCore
@testable import SpadeData

final class PreprocessTests: XCTestCase {
    func options(_ mode: String, load: Int, crop: Int, aspect: Double = 1, flip: Bool = false) -> DatasetOptions {
        var o = DatasetOptions()
        o.preprocessMode = mode
        o.loadSize = load
        o.cropSize = crop
        o.aspectRatio = aspect
        o.noFlip = !flip
        return o
    }

    func plan(_ w: Int, _ h: Int, _ o: DatasetOptions, seed: UInt64 = 0) throws -> GeometryPlan {
        var rng = SplitMix64(seed: seed)
        return try planGeometry(width: w, height: h, options: o, rng: &rng)
    }

    func testModeSizes() throws {
        // (mode, source, load, crop, aspect) -> size after resize (before crop)
        let cases: [(String, Int, Int, Int, Int, Double, Int, Int)] = [
            ("resize_and_crop", 300, 200, 286, 256, 1, 286, 286),
            ("resize_and_crop", 300, 200, 286, 256, 2, 286, 143),
            ("crop", 300, 200, 0 + 64, 64, 1, 300, 200),
            ("scale_width_and_crop", 300, 200, 150, 64, 1, 150, 100),
            ("scale_shortside_and_crop", 300, 200, 100, 64, 1, 150, 100),
            ("scale_shortside_and_crop", 200, 300, 100, 64, 1, 100, 150),
            ("fixed", 300, 200, 999, 64, 2, 64, 32),
            ("none", 64, 64, 1, 64, 1, 64, 64),
            ("scale_width", 128, 128, 64, 64, 1, 64, 64),
            ("scale_shortside", 128, 96, 48, 64, 4.0 / 3, 64, 48),
        ]
        for (mode, w, h, load, crop, aspect, rw, rh) in cases {
            let p = try plan(w, h, options(mode, load: load, crop: crop, aspect: aspect))
            XCTAssertEqual([p.resizeWidth, p.resizeHeight], [rw, rh], mode)
            let o = options(mode, load: load, crop: crop, aspect: aspect)
            XCTAssertEqual([p.outWidth, p.outHeight], [o.outputWidth, o.outputHeight], mode)
            XCTAssertTrue(p.cropX >= 0 && p.cropX + p.outWidth <= rw && p.cropY >= 0 && p.cropY + p.outHeight <= rh, mode)
        }
    }

    func testSizeMismatchesAreErrors() {
        XCTAssertThrowsError(try plan(100, 80, options("none", load: 64, crop: 64)))
        XCTAssertThrowsError(try plan(70, 60, options("none", load: 64, crop: 64)))
        XCTAssertThrowsError(try plan(100, 80, options("scale_width", load: 64, crop: 64)))  // 64x51
        XCTAssertThrowsError(try plan(40, 40, options("crop", load: 64, crop: 64)))         // smaller than crop
        XCTAssertNoThrow(try plan(64, 64, options("crop", load: 64, crop: 64)))
    }

    func testOutputHeightUsesPythonRound() {
        var o = DatasetOptions()
        o.cropSize = 256; o.aspectRatio = 2
        XCTAssertEqual(o.outputHeight, 128)
        o.cropSize = 5; o.aspectRatio = 2  // 2.5 -> 2 (half to even)
        XCTAssertEqual(o.outputHeight, 2)
    }

    func testNearestLabelResizeAndFlip() throws {
        // 4x2 labels upsampled to 8x4: each source pixel becomes a 2x2 block.
        let src: [Int32] = [0, 1, 2, 3,
                            4, 5, 6, 7]
        let p = GeometryPlan(sourceWidth: 4, sourceHeight: 2, resizeWidth: 8, resizeHeight: 4,
                             cropX: 0, cropY: 0, outWidth: 8, outHeight: 4, flip: false)
        let up = transformNearest(src, plan: p)
        XCTAssertEqual(Array(up[0..<8]), [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(Array(up[16..<24]), [4, 4, 5, 5, 6, 6, 7, 7])
        var f = p; f.flip = true
        XCTAssertEqual(Array(transformNearest(src, plan: f)[0..<8]), [3, 3, 2, 2, 1, 1, 0, 0])
        // Downsampling keeps only existing values (nearest never blends labels).
        let big = (0..<(37 * 23)).map { Int32($0 % 5) }
        let d = GeometryPlan(sourceWidth: 37, sourceHeight: 23, resizeWidth: 16, resizeHeight: 9,
                             cropX: 2, cropY: 1, outWidth: 12, outHeight: 7, flip: true)
        XCTAssertTrue(Set(transformNearest(big, plan: d)).isSubset(of: Set(big)))
        // Crop window without resize.
        let c = GeometryPlan(sourceWidth: 4, sourceHeight: 2, resizeWidth: 4, resizeHeight: 2,
                             cropX: 1, cropY: 1, outWidth: 2, outHeight: 1, flip: false)
        XCTAssertEqual(transformNearest(src, plan: c), [5, 6])
    }

    func testBicubicImageResize() {
        // A constant image stays constant under any resize; a flip mirrors.
        let w = 20, h = 10
        let flat = [UInt8](repeating: 0, count: w * h * 3).enumerated().map { UInt8([200, 100, 50][$0.offset % 3]) }
        let p = GeometryPlan(sourceWidth: w, sourceHeight: h, resizeWidth: 7, resizeHeight: 13,
                             cropX: 1, cropY: 2, outWidth: 5, outHeight: 9, flip: true)
        let out = transformImage(flat, plan: p)
        XCTAssertEqual(out.count, 5 * 9 * 3)
        for i in 0..<(5 * 9) { XCTAssertEqual(Array(out[(3 * i)..<(3 * i + 3)]), [200, 100, 50]) }
        // Horizontal ramp, downscaled by 2: monotonic, close to the pair means, mirrored when flipped.
        var ramp = [UInt8](repeating: 0, count: 16 * 2 * 3)
        for y in 0..<2 { for x in 0..<16 { for c in 0..<3 { ramp[(y * 16 + x) * 3 + c] = UInt8(x * 16) } } }
        let q = GeometryPlan(sourceWidth: 16, sourceHeight: 2, resizeWidth: 8, resizeHeight: 2,
                             cropX: 0, cropY: 0, outWidth: 8, outHeight: 2, flip: false)
        let r = transformImage(ramp, plan: q)
        let row = (0..<8).map { Int(r[$0 * 3]) }
        XCTAssertEqual(row, row.sorted())
        for x in 1..<7 { XCTAssertLessThanOrEqual(abs(row[x] - (x * 32 + 8)), 2, "\(row)") }
        var qf = q; qf.flip = true
        let rf = transformImage(ramp, plan: qf)
        XCTAssertEqual((0..<8).map { Int(rf[$0 * 3]) }, row.reversed())
    }

    func testAllModesThroughTheDataset() throws {
        let dir = try makeTempDir(self)
        try writeSmallCustomDataset(dir, count: 3, size: 48)
        for mode in DatasetOptions.preprocessModes {
            var o = customOptions(dir, size: 32)
            o.preprocessMode = mode
            o.loadSize = mode.contains("crop") ? 40 : 32
            o.noFlip = false
            let issues = prescan(o)
            if mode == "none" {  // 48x48 used as is, but batches are 32x32
                XCTAssertEqual(issues.count, 3, "\(issues)")
                XCTAssertTrue(issues[0].problem.contains("does not match the batch size 32x32"), "\(issues)")
                continue
            }
            XCTAssertEqual(issues, [], mode)
            let b = try Dataset(options: o).makeBatch(indices: [0, 2], epoch: 1)
            XCTAssertEqual([b.height, b.width], [32, 32], mode)
            // One-hot: exactly one 1 per pixel.
            let hw = 32 * 32
            for k in 0..<2 {
                for i in stride(from: 0, to: hw, by: 37) {
                    let ones = (0..<8).map { b.semantics[(k * 8 + $0) * hw + i] }.reduce(0, +)
                    XCTAssertEqual(ones, 1, mode)
                }
            }
            XCTAssertTrue(b.image.allSatisfy { $0 >= -1 && $0 <= 1 })
        }
    }
}
