import CImageIO
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A decoded PNG or JPEG, rows top to bottom, samples interleaved.
public struct DecodedImage: Sendable, Equatable {
    public enum ColorType: Int, Sendable {
        case gray = 0, rgb = 2, palette = 3, grayAlpha = 4, rgba = 6
    }

    /// 8-bit-or-less samples (one per byte, raw value) or 16-bit samples.
    public enum Pixels: Sendable, Equatable {
        case u8([UInt8])
        case u16([UInt16])
    }

    public var width: Int
    public var height: Int
    /// Samples per pixel: 1 gray or palette index, 2 gray+alpha, 3 RGB, 4 RGBA.
    public var channels: Int
    /// The file's bit depth (1, 2, 4, 8 or 16).
    public var bitDepth: Int
    public var colorType: ColorType
    public var pixels: Pixels
    /// RGB triples of a palette image (its pixels are palette indices).
    public var palette: [UInt8]

    public init(width: Int, height: Int, channels: Int, bitDepth: Int, colorType: ColorType,
                pixels: Pixels, palette: [UInt8] = []) {
        self.width = width
        self.height = height
        self.channels = channels
        self.bitDepth = bitDepth
        self.colorType = colorType
        self.pixels = pixels
        self.palette = palette
    }

    public var isPalette: Bool { colorType == .palette }

    /// The single-channel integer value of every pixel (H*W): gray value
    /// (8 or 16 bit, not rescaled) or palette index. nil if multi-channel.
    public func indexValues() -> [Int32]? {
        guard channels == 1 else { return nil }
        switch pixels {
        case .u8(let p): return p.map { Int32($0) }
        case .u16(let p): return p.map { Int32($0) }
        }
    }

    /// Packs each pixel's first three samples (or its palette colour) into
    /// one id, `r << 16 | g << 8 | b` (16-bit samples: their high bytes).
    func packedRGB() -> [Int32] {
        let rgb = rgb8()
        var out = [Int32](repeating: 0, count: width * height)
        for i in 0..<out.count {
            out[i] = Int32(rgb[3 * i]) << 16 | Int32(rgb[3 * i + 1]) << 8 | Int32(rgb[3 * i + 2])
        }
        return out
    }

    /// 8-bit RGB (H*W*3) for use as a photo: gray replicated (low bit depths
    /// scaled to 0...255), palette expanded, alpha dropped, 16-bit rounded
    /// to 8-bit (`(v * 255 + 32767) / 65535`).
    public func rgb8() -> [UInt8] {
        if case .u8(let p) = pixels, channels == 3 { return p }
        let n = width * height
        var out = [UInt8](repeating: 0, count: n * 3)
        let c = channels
        switch pixels {
        case .u8(let p):
            if colorType == .palette {
                let pal = palette
                let entries = pal.count / 3
                for i in 0..<n {
                    let k = Int(p[i])
                    if k < entries {
                        out[3 * i] = pal[3 * k]; out[3 * i + 1] = pal[3 * k + 1]; out[3 * i + 2] = pal[3 * k + 2]
                    }
                }
            } else if c >= 3 {
                for i in 0..<n {
                    out[3 * i] = p[c * i]; out[3 * i + 1] = p[c * i + 1]; out[3 * i + 2] = p[c * i + 2]
                }
            } else {
                let maxv = (1 << bitDepth) - 1
                for i in 0..<n {
                    let v = maxv == 255 ? p[c * i] : UInt8(Int(p[c * i]) * 255 / maxv)
                    out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v
                }
            }
        case .u16(let p):
            @inline(__always) func to8(_ v: UInt16) -> UInt8 { UInt8((UInt32(v) * 255 + 32767) / 65535) }
            if c >= 3 {
                for i in 0..<n {
                    out[3 * i] = to8(p[c * i]); out[3 * i + 1] = to8(p[c * i + 1]); out[3 * i + 2] = to8(p[c * i + 2])
                }
            } else {
                for i in 0..<n {
                    let v = to8(p[c * i])
                    out[3 * i] = v; out[3 * i + 1] = v; out[3 * i + 2] = v
                }
            }
        }
        return out
    }
}

/// The formats recognised by their first bytes.
public enum ImageFormat: Sendable {
    case png, jpeg

    static func sniff(_ bytes: [UInt8]) -> ImageFormat? {
        if bytes.count >= 8, bytes[0] == 0x89, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47 { return .png }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        return nil
    }
}

/// Reads a whole file, with the OS's reason on failure (missing, permission...).
public func readFileBytes(path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw DataError(path: path, "cannot read: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw DataError(path: path, "cannot read: \(String(cString: strerror(errno)))") }
    if (st.st_mode & S_IFMT) == S_IFDIR { throw DataError(path: path, "is a directory, not an image file") }
    let size = Int(st.st_size)
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw DataError(path: path, "cannot read: \(String(cString: strerror(errno)))")
        }
        if n == 0 { bytes.removeSubrange(done...); break }
        done += n
    }
    return bytes
}

/// Decodes PNG or JPEG bytes (format from the signature); `path` names the
/// source in errors.
public func decodeImage(_ bytes: [UInt8], path: String) throws -> DecodedImage {
    if bytes.isEmpty { throw DataError(path: path, "empty file") }
    guard let format = ImageFormat.sniff(bytes) else {
        if bytes.count >= 4, (bytes[0] == 0x49 && bytes[1] == 0x49 && bytes[2] == 0x2A)
            || (bytes[0] == 0x4D && bytes[1] == 0x4D && bytes[3] == 0x2A) {
            throw DataError(path: path, "TIFF is not supported (export the tiles as PNG or JPEG)")
        }
        throw DataError(path: path, "not a PNG or JPEG file (unrecognised signature)")
    }
    var img = cimg_image()
    var err = [CChar](repeating: 0, count: 512)
    let rc: Int32 = bytes.withUnsafeBufferPointer { b in
        err.withUnsafeMutableBufferPointer { e in
            switch format {
            case .png: return cimg_decode_png(b.baseAddress, b.count, &img, e.baseAddress, e.count)
            case .jpeg: return cimg_decode_jpeg(b.baseAddress, b.count, &img, e.baseAddress, e.count)
            }
        }
    }
    defer { cimg_free(&img) }
    if rc != 0 {
        let msg = String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw DataError(path: path, "corrupt \(format == .png ? "PNG" : "JPEG"): \(msg)")
    }
    let w = Int(img.width), h = Int(img.height), c = Int(img.channels)
    let pixels: DecodedImage.Pixels
    if img.bit_depth == 16 {
        let n = w * h * c
        var p = [UInt16](repeating: 0, count: n)
        p.withUnsafeMutableBytes { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: img.pixels, count: n * 2))
        }
        pixels = .u16(p)
    } else {
        pixels = .u8(Array(UnsafeBufferPointer(start: img.pixels, count: w * h * c)))
    }
    var palette: [UInt8] = []
    if img.palette_size > 0 {
        palette = withUnsafeBytes(of: img.palette) { Array($0.prefix(Int(img.palette_size) * 3)) }
    }
    return DecodedImage(width: w, height: h, channels: c, bitDepth: Int(img.bit_depth),
                        colorType: DecodedImage.ColorType(rawValue: Int(img.color_type)) ?? .gray,
                        pixels: pixels, palette: palette)
}

/// Reads and decodes a PNG (8/16-bit gray, gray+alpha, palette, RGB, RGBA) or
/// JPEG (gray, RGB). Errors name the file.
public func readImage(path: String) throws -> DecodedImage {
    try decodeImage(try readFileBytes(path: path), path: path)
}

private func cError(_ err: [CChar]) -> String {
    String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Encodes 8-bit gray (channels 1), gray+alpha (2), RGB (3) or RGBA (4)
/// pixels (H*W*channels, interleaved) as PNG bytes. `level`: zlib level 0...9
/// (-1 = libpng's default).
public func encodePNG(width: Int, height: Int, channels: Int, pixels: [UInt8], level: Int = -1) throws -> [UInt8] {
    precondition(pixels.count == width * height * channels, "encodePNG: pixel count \(pixels.count) != \(width)x\(height)x\(channels)")
    return try pixels.withUnsafeBytes { try encodePNGRaw($0.baseAddress!, width, height, channels, 8, level) }
}

/// Encodes 16-bit samples (e.g. an instance map with ids > 255) as PNG bytes.
public func encodePNG16(width: Int, height: Int, channels: Int, pixels: [UInt16], level: Int = -1) throws -> [UInt8] {
    precondition(pixels.count == width * height * channels, "encodePNG16: pixel count mismatch")
    return try pixels.withUnsafeBytes { try encodePNGRaw($0.baseAddress!, width, height, channels, 16, level) }
}

private func encodePNGRaw(_ p: UnsafeRawPointer, _ w: Int, _ h: Int, _ c: Int, _ depth: Int, _ level: Int) throws -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size = 0
    var err = [CChar](repeating: 0, count: 512)
    let rc = err.withUnsafeMutableBufferPointer { e in
        cimg_encode_png(p, Int32(w), Int32(h), Int32(c), Int32(depth), Int32(level), &out, &size, e.baseAddress, e.count)
    }
    guard rc == 0, let buf = out else { throw DataError(path: "<png encoder>", cError(err)) }
    defer { cimg_free_buffer(buf) }
    return Array(UnsafeBufferPointer(start: buf, count: size))
}

/// Encodes 8-bit gray (1) or RGB (3) pixels as JPEG bytes (used by tests and
/// for writing JPEG datasets).
public func encodeJPEG(width: Int, height: Int, channels: Int, pixels: [UInt8], quality: Int = 90) throws -> [UInt8] {
    precondition(pixels.count == width * height * channels, "encodeJPEG: pixel count mismatch")
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size = 0
    var err = [CChar](repeating: 0, count: 512)
    let rc = pixels.withUnsafeBufferPointer { p in
        err.withUnsafeMutableBufferPointer { e in
            cimg_encode_jpeg(p.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality), &out, &size, e.baseAddress, e.count)
        }
    }
    guard rc == 0, let buf = out else { throw DataError(path: "<jpeg encoder>", cError(err)) }
    defer { cimg_free_buffer(buf) }
    return Array(UnsafeBufferPointer(start: buf, count: size))
}

/// Writes bytes to `path` atomically (temp file in the same directory, then rename).
public func writeFileAtomically(path: String, bytes: [UInt8]) throws {
    let url = URL(fileURLWithPath: path)
    do {
        try Data(bytes).write(to: url, options: .atomic)
    } catch {
        throw DataError(path: path, "cannot write: \(error.localizedDescription)")
    }
}

/// Writes an 8-bit gray (channels 1) or RGB (channels 3) PNG file.
public func writePNG(path: String, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
    try writeFileAtomically(path: path, bytes: try encodePNG(width: width, height: height, channels: channels, pixels: pixels))
}

/// Writes a 16-bit gray PNG (instance maps).
public func writePNG16(path: String, width: Int, height: Int, pixels: [UInt16]) throws {
    try writeFileAtomically(path: path, bytes: try encodePNG16(width: width, height: height, channels: 1, pixels: pixels))
}
