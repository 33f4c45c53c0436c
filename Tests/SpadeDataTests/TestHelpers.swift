import Foundation
import XCTest
@testable import SpadeData

/// A fresh temporary directory, removed at the end of the test.
func makeTempDir(_ test: XCTestCase, _ name: String = #function) throws -> String {
    let base = FileManager.default.temporaryDirectory.path
    let clean = name.filter { $0.isLetter || $0.isNumber }
    let dir = "\(base)/spade-data-tests-\(getpid())-\(clean)-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

func mkdir(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

// MARK: - A minimal independent PNG writer (stored deflate blocks), used to
// produce palette and low-bit-depth files that the libpng-based encoder
// does not write, and to test the decoder against a second implementation.

private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
}

private func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }

private func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let td = Array(type.utf8) + data
    return be32(UInt32(data.count)) + td + be32(crc32(td))
}

/// zlib stream with stored (uncompressed) deflate blocks.
private func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var i = 0
    repeat {
        let n = min(65535, data.count - i)
        let final: UInt8 = i + n >= data.count ? 1 : 0
        out += [final, UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)]
        out += data[i..<(i + n)]
        i += n
    } while i < data.count
    var a: UInt32 = 1, b: UInt32 = 0
    for x in data { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
    return out + be32(b << 16 | a)
}

/// A PNG from already-packed scanlines (without filter bytes).
func rawPNG(width: Int, height: Int, bitDepth: Int, colorType: Int, rows: [[UInt8]], palette: [UInt8]? = nil) -> [UInt8] {
    var ihdr = be32(UInt32(width)) + be32(UInt32(height))
    ihdr += [UInt8(bitDepth), UInt8(colorType), 0, 0, 0]
    var idat: [UInt8] = []
    for r in rows { idat.append(0); idat += r }
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    png += chunk("IHDR", ihdr)
    if let p = palette { png += chunk("PLTE", p) }
    png += chunk("IDAT", zlibStored(idat))
    png += chunk("IEND", [])
    return png
}

/// An 8-bit palette PNG whose pixels are the given indices.
func palettePNG(width: Int, height: Int, indices: [UInt8], palette: [UInt8]) -> [UInt8] {
    let rows = (0..<height).map { Array(indices[($0 * width)..<(($0 + 1) * width)]) }
    return rawPNG(width: width, height: height, bitDepth: 8, colorType: 3, rows: rows, palette: palette)
}

/// Writes an NVlabs custom dataset of `count` samples from the synthetic generator.
func writeSmallCustomDataset(_ dir: String, count: Int, size: Int, classes: Int = 8, seed: UInt64 = 1) throws {
    try writeSyntheticDataset(to: dir, count: count, size: size, classes: classes, seed: seed)
}

func customOptions(_ root: String, labelNC: Int = 8, size: Int = 32) -> DatasetOptions {
    var o = DatasetOptions()
    o.datasetMode = "custom"
    o.dataroot = root
    o.labelNC = labelNC
    o.noInstance = true
    o.preprocessMode = "none"
    o.cropSize = size
    o.loadSize = size
    o.noFlip = true
    return o
}
