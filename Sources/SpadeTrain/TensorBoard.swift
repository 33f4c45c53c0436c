#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Writes TensorBoard event files (`events.out.tfevents.<unix time>.<hostname>`): TFRecord
/// framing around hand-encoded `Event` protobufs with scalar and PNG image summaries.
public final class TensorBoardWriter {
    /// The event file being written.
    public let path: String
    private var fd: Int32

    /// Creates a new event file in `directory` and writes the `brain.Event:2` version record.
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws {
        try AtomicFile.createDirectory(directory)
        var host = [CChar](repeating: 0, count: 256)
        let hostname = gethostname(&host, host.count) == 0
            ? String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "localhost"
        // The pid keeps a run resumed within the same second from appending to its predecessor's file.
        path = "\(directory)/events.out.tfevents.\(Int(wallTime)).\(hostname).\(getpid())"
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError.posix(path, "creating the TensorBoard event file") }
        var event = Protobuf()
        event.double(1, wallTime)
        event.string(3, "brain.Event:2")
        try writeRecord(event.bytes)
    }

    deinit { if fd >= 0 { _ = tbClose(fd) } }

    /// Logs scalars (tag, value) at `step` in one event.
    public func addScalars(_ values: [(tag: String, value: Float)], step: Int,
                           wallTime: Double = Date().timeIntervalSince1970) throws {
        var summary = Protobuf()
        for (tag, value) in values {
            var v = Protobuf()
            v.string(1, tag)
            v.float(2, value)
            summary.message(1, v)
        }
        try writeEvent(summary: summary, step: step, wallTime: wallTime)
    }

    /// Logs one scalar.
    public func addScalar(_ tag: String, _ value: Float, step: Int,
                          wallTime: Double = Date().timeIntervalSince1970) throws {
        try addScalars([(tag, value)], step: step, wallTime: wallTime)
    }

    /// Logs a PNG image (e.g. a sample grid); `channels` is the PNG's colour channels (3 = RGB).
    public func addImage(_ tag: String, png: [UInt8], width: Int, height: Int, channels: Int = 3, step: Int,
                         wallTime: Double = Date().timeIntervalSince1970) throws {
        var image = Protobuf()
        image.varint(1, UInt64(height))
        image.varint(2, UInt64(width))
        image.varint(3, UInt64(channels))
        image.data(4, png)
        var v = Protobuf()
        v.string(1, tag)
        v.message(4, image)
        var summary = Protobuf()
        summary.message(1, v)
        try writeEvent(summary: summary, step: step, wallTime: wallTime)
    }

    /// Marks a (re)start at `step`: TensorBoard discards events of earlier files with a step >= `step`
    /// (`SessionLog` START, what PyTorch's `SummaryWriter(purge_step:)` writes), so a resumed run's
    /// curves do not show what the interrupted run logged after its last checkpoint twice.
    public func addSessionStart(step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
        var sessionLog = Protobuf()
        sessionLog.varint(1, 1)   // status: START
        var event = Protobuf()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(7, sessionLog)   // Event.session_log
        try writeRecord(event.bytes)
    }

    /// Makes the events written so far durable.
    public func sync() throws {
        guard fd >= 0, fsync(fd) == 0 else { throw FileError.posix(path, "fsync") }
    }

    private func writeEvent(summary: Protobuf, step: Int, wallTime: Double) throws {
        var event = Protobuf()
        event.double(1, wallTime)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        try writeRecord(event.bytes)
    }

    private func writeRecord(_ data: [UInt8]) throws {
        precondition(fd >= 0)
        try AtomicFile.append(TFRecord.frame(data), to: fd, path: path)
    }
}

#if canImport(Glibc)
private let tbClose = Glibc.close
#elseif canImport(Darwin)
private let tbClose = Darwin.close
#endif

/// TFRecord framing: u64 length, masked CRC32C of the length, data, masked CRC32C of the data.
public enum TFRecord {
    /// One framed record.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let len = littleEndianBytes(UInt64(data.count))
        out += len
        out += littleEndianBytes(maskedCRC32C(len))
        out += data
        out += littleEndianBytes(maskedCRC32C(data))
        return out
    }

    /// TensorFlow's CRC mask: rotate right by 15, add 0xa282ead8.
    public static func maskedCRC32C(_ data: [UInt8]) -> UInt32 {
        let crc = crc32c(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }

    static func littleEndianBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) }
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78); "123456789" -> 0xE3069283.
public func crc32c(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xffff_ffff
    for b in data { crc = crc32cTable[Int((crc ^ UInt32(b)) & 0xff)] ^ (crc >> 8) }
    return ~crc
}

private let crc32cTable: [UInt32] = (0..<256).map { i -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82f6_3b78 : c >> 1 }
    return c
}

/// A minimal protobuf encoder: varint, fixed32/64 and length-delimited fields, in call order.
struct Protobuf {
    private(set) var bytes: [UInt8] = []

    private mutating func key(_ field: Int, _ wireType: UInt64) { appendVarint(UInt64(field) << 3 | wireType) }

    private mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }

    /// Wire type 0 (int32/int64/uint/bool/enum).
    mutating func varint(_ field: Int, _ value: UInt64) { key(field, 0); appendVarint(value) }
    /// Wire type 1, little-endian double.
    mutating func double(_ field: Int, _ value: Double) { key(field, 1); bytes += TFRecord.littleEndianBytes(value.bitPattern) }
    /// Wire type 5, little-endian float.
    mutating func float(_ field: Int, _ value: Float) { key(field, 5); bytes += TFRecord.littleEndianBytes(value.bitPattern) }
    /// Wire type 2, raw bytes.
    mutating func data(_ field: Int, _ value: [UInt8]) { key(field, 2); appendVarint(UInt64(value.count)); bytes += value }
    /// Wire type 2, UTF-8 string.
    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }
    /// Wire type 2, embedded message.
    mutating func message(_ field: Int, _ value: Protobuf) { data(field, value.bytes) }
}
