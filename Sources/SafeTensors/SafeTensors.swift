import Foundation

/// Element types spade-dist reads and writes (the safetensors dtype strings).
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f64 = "F64"
    case i32 = "I32"
    case i64 = "I64"
    case u8 = "U8"

    public var byteSize: Int {
        switch self {
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        case .u8: return 1
        }
    }
}

/// One tensor of a safetensors file: dtype, shape and little-endian raw bytes.
public struct TensorRecord: Sendable, Equatable {
    public var dtype: DType
    public var shape: [Int]
    public var bytes: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.byteSize, "byte count does not match shape")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public init(shape: [Int], floats: [Float]) {
        precondition(floats.count == shape.reduce(1, *))
        self.init(dtype: .f32, shape: shape, bytes: floats.withUnsafeBytes { Array($0) })
    }

    public init(shape: [Int], int64s: [Int64]) {
        precondition(int64s.count == shape.reduce(1, *))
        self.init(dtype: .i64, shape: shape, bytes: int64s.withUnsafeBytes { Array($0) })
    }

    public init(shape: [Int], int32s: [Int32]) {
        precondition(int32s.count == shape.reduce(1, *))
        self.init(dtype: .i32, shape: shape, bytes: int32s.withUnsafeBytes { Array($0) })
    }

    /// The values as Float (F32 as stored; other dtypes converted).
    public var floats: [Float] {
        switch dtype {
        case .f32: return bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        case .f64: return bytes.withUnsafeBytes { $0.bindMemory(to: Double.self).map { Float($0) } }
        case .i32: return bytes.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Float($0) } }
        case .i64: return bytes.withUnsafeBytes { $0.bindMemory(to: Int64.self).map { Float($0) } }
        case .u8: return bytes.map { Float($0) }
        }
    }

    /// The values as Int64 (integer dtypes exact; floats truncated toward zero and clamped to
    /// Int64's range, NaN as 0, so that no value in a file can trap the conversion).
    public var int64s: [Int64] {
        switch dtype {
        case .i64: return bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
        case .i32: return bytes.withUnsafeBytes { $0.bindMemory(to: Int32.self).map { Int64($0) } }
        case .u8: return bytes.map { Int64($0) }
        case .f32: return bytes.withUnsafeBytes { $0.bindMemory(to: Float.self).map { clampedInt64(Double($0)) } }
        case .f64: return bytes.withUnsafeBytes { $0.bindMemory(to: Double.self).map(clampedInt64) }
        }
    }
}

/// `x` truncated toward zero and clamped to Int64's range; NaN is 0.
private func clampedInt64(_ x: Double) -> Int64 {
    if x.isNaN { return 0 }
    if x >= 0x1p63 { return .max }
    if x <= -0x1p63 { return .min }
    return Int64(x)
}

/// Why a safetensors file could not be read.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): not a valid safetensors file: \(reason)" }
}

/// A parsed safetensors file (https://github.com/huggingface/safetensors):
/// 8-byte little-endian header length, a JSON header, then the raw data.
public struct SafeTensorsFile: Sendable {
    public var tensors: [String: TensorRecord]
    public var metadata: [String: String]

    public init(tensors: [String: TensorRecord] = [:], metadata: [String: String] = [:]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public subscript(name: String) -> TensorRecord? {
        get { tensors[name] }
        set { tensors[name] = newValue }
    }

    /// Names in sorted order (the order in which they are written).
    public var names: [String] { tensors.keys.sorted() }

    // MARK: reading

    public static func read(path: String) throws -> SafeTensorsFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafeTensorsError(path: path, reason: "cannot read the file")
        }
        return try parse([UInt8](data), path: path)
    }

    /// Parses and validates: header length within the file, JSON well-formed,
    /// known dtypes, offsets in bounds, contiguous and matching the shapes.
    public static func parse(_ buf: [UInt8], path: String = "<memory>") throws -> SafeTensorsFile {
        func fail(_ r: String) -> SafeTensorsError { SafeTensorsError(path: path, reason: r) }
        guard buf.count >= 8 else { throw fail("file is \(buf.count) bytes, shorter than the 8-byte header length") }
        var headerLen: UInt64 = 0
        for i in 0..<8 { headerLen |= UInt64(buf[i]) << (8 * UInt64(i)) }
        guard headerLen <= UInt64(buf.count - 8) else {
            throw fail("header length \(headerLen) exceeds the file size \(buf.count)")
        }
        let headerEnd = 8 + Int(headerLen)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(buf[8..<headerEnd]))
        } catch {
            throw fail("header is not valid JSON")
        }
        guard let header = json as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataSize = buf.count - headerEnd
        var file = SafeTensorsFile()
        var ranges: [(Int, Int, String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let meta = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v as? String else { throw fail("__metadata__.\(k) is not a string") }
                    file.metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shapeAny = entry["shape"] as? [Any],
                  let offsAny = entry["data_offsets"] as? [Any], offsAny.count == 2
            else { throw fail("tensor '\(name)' has no dtype, shape or data_offsets") }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw fail("tensor '\(name)' has unsupported dtype \(dtypeName)")
            }
            var shape: [Int] = []
            for d in shapeAny {
                guard let n = (d as? NSNumber)?.intValue, n >= 0 else { throw fail("tensor '\(name)' has a bad shape") }
                shape.append(n)
            }
            guard let begin = (offsAny[0] as? NSNumber)?.intValue, let end = (offsAny[1] as? NSNumber)?.intValue,
                  begin >= 0, end >= begin, end <= dataSize
            else { throw fail("tensor '\(name)' has data offsets outside the file") }
            // The byte size of the shape, in checked arithmetic: a hostile shape must not trap.
            var size = dtype.byteSize
            for d in shape {
                let (p, overflow) = size.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("tensor '\(name)' has shape \(shape), too large for any file") }
                size = p
            }
            guard end - begin == size else {
                throw fail("tensor '\(name)' holds \(end - begin) bytes, its shape \(shape) needs \(size)")
            }
            if end > begin { ranges.append((begin, end, name)) }   // an empty tensor overlaps nothing
            file.tensors[name] = TensorRecord(dtype: dtype, shape: shape,
                                              bytes: Array(buf[(headerEnd + begin)..<(headerEnd + end)]))
        }
        ranges.sort { $0.0 < $1.0 }
        for i in 1..<max(ranges.count, 1) where ranges[i].0 < ranges[i - 1].1 {
            throw fail("tensors '\(ranges[i - 1].2)' and '\(ranges[i].2)' overlap")
        }
        return file
    }

    // MARK: writing

    /// The serialized file: tensors in name order, header padded to 8 bytes.
    public func serialized() -> [UInt8] {
        var entries: [String] = []
        var offset = 0
        for name in names {
            let t = tensors[name]!
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonStringLiteral(name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        if !metadata.isEmpty {
            let meta = metadata.keys.sorted().map { "\(jsonStringLiteral($0)):\(jsonStringLiteral(metadata[$0]!))" }
            entries.insert("\"__metadata__\":{\(meta.joined(separator: ","))}", at: 0)
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + offset)
        let len = UInt64(header.count)
        for i in 0..<8 { out.append(UInt8((len >> (8 * UInt64(i))) & 0xff)) }
        out += header
        for name in names { out += tensors[name]!.bytes }
        return out
    }
}

/// A double-quoted string literal with JSON's escapes (control characters and DEL as
/// \uXXXX); also a valid YAML double-quoted scalar, so the config writer uses it too.
public func jsonStringLiteral(_ s: String) -> String {
    var r = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": r += "\\\""
        case "\\": r += "\\\\"
        case "\n": r += "\\n"
        case "\r": r += "\\r"
        case "\t": r += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7f { r += String(format: "\\u%04x", u.value) } else { r.unicodeScalars.append(u) }
        }
    }
    return r + "\""
}
