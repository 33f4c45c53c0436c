#if canImport(Glibc)
import Glibc
private let cClose = Glibc.close
#elseif canImport(Darwin)
import Darwin
private let cClose = Darwin.close
#endif
import Foundation
import SafeTensors

/// One logged step of metrics.jsonl (DESIGN §9). Names are the JSON keys.
public struct MetricsRecord: Equatable, Sendable {
    /// Generator steps done, counting from 1.
    public var step: Int
    public var epoch: Int
    public var loss_D: Float = 0
    public var loss_G: Float = 0
    public var D_Fake: Float = 0
    public var D_real: Float = 0
    public var G_GAN: Float = 0
    public var G_GANFeat: Float = 0
    public var lr_G: Float = 0
    public var lr_D: Float = 0
    public var images_per_s: Float = 0
    public var data_wait_s: Float = 0
    public var comm_wait_s: Float = 0
    /// Further values (e.g. skipped_steps, eval_accuracy), written after the fixed keys in key order.
    public var extras: [String: Float] = [:]

    public init(step: Int, epoch: Int) {
        self.step = step
        self.epoch = epoch
    }

    /// The fixed float keys, in the order they are written.
    public static let floatKeys: [String] = ["loss_D", "loss_G", "D_Fake", "D_real", "G_GAN", "G_GANFeat",
                                             "lr_G", "lr_D", "images_per_s", "data_wait_s", "comm_wait_s"]
    private static let floatPaths: [WritableKeyPath<MetricsRecord, Float> & Sendable] = [
        \.loss_D, \.loss_G, \.D_Fake, \.D_real, \.G_GAN, \.G_GANFeat, \.lr_G, \.lr_D,
        \.images_per_s, \.data_wait_s, \.comm_wait_s,
    ]

    /// The value of a fixed key or an extra, by JSON name.
    public subscript(key: String) -> Float? {
        if let i = Self.floatKeys.firstIndex(of: key) { return self[keyPath: Self.floatPaths[i]] }
        return extras[key]
    }

    /// One JSON object on one line (no newline). Floats are the shortest decimal that reads
    /// back as the same Float32; NaN and ±Inf are written as `null` (JSON has no such numbers).
    public func jsonLine() -> String {
        var parts = ["\"step\":\(step)", "\"epoch\":\(epoch)"]
        for (key, path) in zip(Self.floatKeys, Self.floatPaths) {
            parts.append("\"\(key)\":\(jsonFloat(self[keyPath: path]))")
        }
        for key in extras.keys.sorted() {
            parts.append("\(jsonStringLiteral(key)):\(jsonFloat(extras[key]!))")
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// Parses one line of metrics.jsonl (`null` reads back as NaN); nil if it is not a record.
    public init?(jsonLine line: String) {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let step = (obj["step"] as? NSNumber)?.intValue,
              let epoch = (obj["epoch"] as? NSNumber)?.intValue else { return nil }
        self.init(step: step, epoch: epoch)
        func float(_ any: Any) -> Float? {
            if any is NSNull { return .nan }
            guard let n = any as? NSNumber, !(any is Bool) else { return nil }
            return Float(n.doubleValue)
        }
        for (key, value) in obj where key != "step" && key != "epoch" {
            guard let f = float(value) else { continue }
            if let i = Self.floatKeys.firstIndex(of: key) { self[keyPath: Self.floatPaths[i]] = f } else { extras[key] = f }
        }
    }
}

/// Appends `MetricsRecord`s to metrics.jsonl, one line per write(2) call (no user-space buffer,
/// so a crash loses at most the line being written); `sync()` fsyncs (call it at checkpoints).
public final class MetricsLog {
    public let path: String
    private var fd: Int32

    /// Opens `path` for appending. With `keepingUpToStep`, first drops records with a larger
    /// step (a resumed run re-does those steps) — atomically, via `AtomicFile`.
    public init(path: String, keepingUpToStep: Int? = nil) throws {
        self.path = path
        if let last = keepingUpToStep, FileManager.default.fileExists(atPath: path) {
            let kept = try Self.read(path: path).filter { $0.step <= last }
            try AtomicFile.write(kept.map { $0.jsonLine() + "\n" }.joined(), to: path)
        }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError.posix(path, "opening the metrics log") }
    }

    deinit { if fd >= 0 { _ = cClose(fd) } }

    /// Appends one record as one line.
    public func append(_ record: MetricsRecord) throws {
        precondition(fd >= 0, "MetricsLog used after close()")
        try AtomicFile.append(Array((record.jsonLine() + "\n").utf8), to: fd, path: path)
    }

    /// Makes everything appended so far durable.
    public func sync() throws {
        guard fd >= 0, fsync(fd) == 0 else { throw FileError.posix(path, "fsync") }
    }

    /// fsyncs and closes the file.
    public func close() throws {
        guard fd >= 0 else { return }
        defer { _ = cClose(fd); fd = -1 }
        try sync()
    }

    /// All records of a metrics.jsonl file, in file order; a torn last line is skipped.
    public static func read(path: String) throws -> [MetricsRecord] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FileError(path: path, reason: "cannot read the metrics log")
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { MetricsRecord(jsonLine: String($0)) }
    }
}

/// A Float as a JSON number: shortest round-trip decimal; `null` for NaN and ±Inf.
public func jsonFloat(_ x: Float) -> String {
    x.isFinite ? "\(x)" : "null"
}

