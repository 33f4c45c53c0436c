import Foundation
import XCTest
@testable import SpadeData

final class CodecTests: XCTestCase {
    func testPNGRoundTripRGBAndGray() throws {
        let dir = try makeTempDir(self)
        let w = 13, h = 7
        let rgb = (0..<(w * h * 3)).map { UInt8(($0 * 37 + 11) % 256) }
        try writePNG(path: "\(dir)/rgb.png", width: w, height: h, channels: 3, pixels: rgb)
        let a = try readImage(path: "\(dir)/rgb.png")
        XCTAssertEqual([a.width, a.height, a.channels, a.bitDepth], [w, h, 3, 8])
        XCTAssertEqual(a.colorType, .rgb)
        XCTAssertEqual(a.pixels, .u8(rgb))
        XCTAssertEqual(a.rgb8(), rgb)

        let gray = (0..<(w * h)).map { UInt8(($0 * 5) % 256) }
        try writePNG(path: "\(dir)/gray.png", width: w, height: h, channels: 1, pixels: gray)
        let g = try readImage(path: "\(dir)/gray.png")
        XCTAssertEqual([g.width, g.height, g.channels, g.bitDepth], [w, h, 1, 8])
        XCTAssertEqual(g.indexValues(), gray.map { Int32($0) })
        XCTAssertEqual(Array(g.rgb8().prefix(6)), [gray[0], gray[0], gray[0], gray[1], gray[1], gray[1]])
    }

    func testEncodePNGInMemoryMatchesFile() throws {
        let px: [UInt8] = [0, 255, 0, 255, 0, 0]
        let bytes = try encodePNG(width: 2, height: 1, channels: 3, pixels: px)
        XCTAssertEqual(Array(bytes.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(try decodeImage(bytes, path: "mem").pixels, .u8(px))
    }

    func testRGBAAndGrayAlphaDropAlpha() throws {
        let rgba: [UInt8] = [10, 20, 30, 0, 40, 50, 60, 255]
        let img = try decodeImage(try encodePNG(width: 2, height: 1, channels: 4, pixels: rgba), path: "rgba")
        XCTAssertEqual(img.channels, 4)
        XCTAssertEqual(img.colorType, .rgba)
        XCTAssertEqual(img.rgb8(), [10, 20, 30, 40, 50, 60])
        XCTAssertNil(img.indexValues())
        let ga = try decodeImage(try encodePNG(width: 2, height: 1, channels: 2, pixels: [7, 0, 9, 255]), path: "ga")
        XCTAssertEqual(ga.colorType, .grayAlpha)
        XCTAssertEqual(ga.rgb8(), [7, 7, 7, 9, 9, 9])
    }

    func test16BitInstanceMapKeepsIds() throws {
        let dir = try makeTempDir(self)
        let ids: [UInt16] = [0, 1, 255, 256, 1000, 65535, 4097, 300]
        try writePNG16(path: "\(dir)/inst.png", width: 4, height: 2, pixels: ids)
        let img = try readImage(path: "\(dir)/inst.png")
        XCTAssertEqual(img.bitDepth, 16)
        XCTAssertEqual(img.pixels, .u16(ids))
        XCTAssertEqual(img.indexValues(), ids.map { Int32($0) })
        // As a photo, 16-bit values round to 8 bits.
        XCTAssertEqual(img.rgb8()[15], 255)  // 65535 -> 255 (pixel 5)
    }

    func testPaletteLabelYieldsIndexNotColour() throws {
        // Palette: index 0 black, 1 red, 2 green, 3 blue; pixels are indices.
        let palette: [UInt8] = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255]
        let idx: [UInt8] = [0, 1, 2, 3, 3, 2, 1, 0]
        let img = try decodeImage(palettePNG(width: 4, height: 2, indices: idx, palette: palette), path: "pal.png")
        XCTAssertTrue(img.isPalette)
        XCTAssertEqual(img.indexValues(), idx.map { Int32($0) })
        XCTAssertEqual(Array(img.rgb8().prefix(6)), [0, 0, 0, 255, 0, 0])  // expanded only as a photo
    }

    func testLowBitDepthGrayAndPaletteAreUnpacked() throws {
        // 2-bit gray, 5 pixels: 0 1 2 3 1 -> packed big-endian 2 bits each.
        let row: [UInt8] = [0b0001_1011, 0b0100_0000]
        let img = try decodeImage(rawPNG(width: 5, height: 1, bitDepth: 2, colorType: 0, rows: [row]), path: "g2")
        XCTAssertEqual(img.indexValues(), [0, 1, 2, 3, 1])
        XCTAssertEqual(img.rgb8()[9], 255)  // value 3 of 3 -> 255 as a photo
        // 4-bit palette: indices 5, 2, 15.
        let pal = [UInt8]((0..<48).map { UInt8($0 * 5) })
        let p = try decodeImage(rawPNG(width: 3, height: 1, bitDepth: 4, colorType: 3, rows: [[0x52, 0xF0]], palette: pal), path: "p4")
        XCTAssertEqual(p.indexValues(), [5, 2, 15])
    }

    func testJPEGDecode() throws {
        let w = 16, h = 16
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) { rgb[3 * i] = 200; rgb[3 * i + 1] = 100; rgb[3 * i + 2] = 50 }
        let dir = try makeTempDir(self)
        try writeBytes("\(dir)/a.jpg", try encodeJPEG(width: w, height: h, channels: 3, pixels: rgb, quality: 95))
        let img = try readImage(path: "\(dir)/a.jpg")
        XCTAssertEqual([img.width, img.height, img.channels, img.bitDepth], [w, h, 3, 8])
        guard case .u8(let px) = img.pixels else { return XCTFail("8-bit expected") }
        XCTAssertLessThanOrEqual(zip(px, rgb).map { abs(Int($0) - Int($1)) }.max()!, 4)
        let gray = try decodeImage(try encodeJPEG(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 77, count: 64)), path: "g.jpg")
        XCTAssertEqual(gray.channels, 1)
        XCTAssertEqual(gray.rgb8().count, 64 * 3)
    }

    func testCorruptFilesThrowNamingTheFile() throws {
        let dir = try makeTempDir(self)
        let good = try encodePNG(width: 32, height: 32, channels: 3, pixels: (0..<(32 * 32 * 3)).map { UInt8($0 % 251) })
        let cases: [(String, [UInt8], String)] = [
            ("trunc.png", Array(good.prefix(good.count / 2)), "corrupt PNG"),
            ("noend.png", Array(good.prefix(good.count - 12)), "corrupt PNG"),
            ("garbage.jpg", (0..<500).map { UInt8(($0 * 7919) % 256) }, "not a PNG or JPEG"),
            ("fakejpeg.jpg", [0xFF, 0xD8, 0xFF, 0xE0] + (0..<300).map { UInt8($0 % 256) }, "corrupt JPEG"),
            ("empty.png", [], "empty file"),
            ("tiff.png", [0x49, 0x49, 0x2A, 0x00, 1, 2, 3], "TIFF"),
        ]
        for (name, bytes, expect) in cases {
            try writeBytes("\(dir)/\(name)", bytes)
            XCTAssertThrowsError(try readImage(path: "\(dir)/\(name)"), name) { e in
                let msg = "\(e)"
                XCTAssertTrue(msg.contains("\(dir)/\(name)"), msg)
                XCTAssertTrue(msg.contains(expect), msg)
                XCTAssertEqual((e as? DataError)?.exitCode, 2)
            }
        }
        // Truncated JPEG: libjpeg's "premature end" warning is an error here.
        let jpeg = try encodeJPEG(width: 64, height: 64, channels: 3, pixels: (0..<(64 * 64 * 3)).map { UInt8($0 % 256) })
        try writeBytes("\(dir)/cut.jpg", Array(jpeg.prefix(jpeg.count / 2)))
        XCTAssertThrowsError(try readImage(path: "\(dir)/cut.jpg")) { e in
            XCTAssertTrue("\(e)".contains("cut.jpg: corrupt JPEG"), "\(e)")
        }
        XCTAssertThrowsError(try readImage(path: "\(dir)/missing.png")) { e in
            XCTAssertTrue("\(e)".contains("missing.png: cannot read: No such file"), "\(e)")
        }
    }
}
