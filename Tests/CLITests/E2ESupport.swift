// Readers for what a training run leaves in its run directory, written independently of
// SpadeTrain (own CRC-32C, own protobuf decoding), plus process helpers for the
// end-to-end tests (TrainingRunTests, RobustnessTests, BadInputTests, CommandTests).

import Foundation
import SafeTensors
import SpadeData
import SpadeTestSupport
import XCTest

// MARK: running the binary

enum E2E {
    /// Seconds a single run may take before the test fails (the machine is shared; no timing asserts).
    static let timeout = 300.0

    /// A small model for the tests that only need *a* training run (signals, kills, bad input):
    /// ngf 8 / spade_hidden 16 / ndf 8 like the fixtures' tiny config, 16 synthetic scenes.
    static let small = ["--set", "ngf=8", "--set", "spade_hidden=16", "--set", "ndf=8", "--set", "synthetic_count=16"]

    /// `spade-dist args` with SWIFT_BACKTRACE enabled, so a crash would show up in stderr.
    static func run(_ args: [String], in directory: String? = nil, timeout: Double = E2E.timeout,
                    whileRunning: ((Process) -> Void)? = nil) throws -> ProcessResult {
        try ProcessRunner.run(try CLI.exe(), args, timeout: timeout, environment: backtraceOn,
                              directory: directory, whileRunning: whileRunning)
    }

    /// `mpirun -np np spade-dist args`.
    static func mpi(np: Int, _ args: [String], in directory: String? = nil, timeout: Double = E2E.timeout,
                    whileRunning: ((Process) -> Void)? = nil) throws -> ProcessResult {
        try ProcessRunner.mpi(np: np, try CLI.exe(), args, timeout: timeout, environment: backtraceOn,
                              directory: directory, whileRunning: whileRunning)
    }

    static let backtraceOn = ["SWIFT_BACKTRACE": "enable=yes,interactive=no"]

    /// Fails with the process output when the run did not exit 0.
    static func assertSuccess(_ r: ProcessResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(r.timedOut, "\(what) timed out\n\(r.output)", file: file, line: line)
        XCTAssertEqual(r.status, 0, "\(what) failed\n\(r.output)", file: file, line: line)
        XCTAssertFalse(r.signaled, "\(what) died by a signal\n\(r.output)", file: file, line: line)
    }

    /// Polls `condition` every `interval` seconds until it holds (true), or `timeout` passes or
    /// `process` (when given) has ended (false).
    static func waitFor(_ process: Process? = nil, timeout: Double = E2E.timeout, interval: Double = 0.05,
                        _ condition: () -> Bool) -> Bool {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if condition() { return true }
            if let process, !process.isRunning { return condition() }
            usleep(UInt32(interval * 1e6))
        }
        return false
    }

    /// PIDs of the direct children of `pid` (Linux /proc).
    static func children(of pid: Int32) -> [Int32] {
        let fm = FileManager.default
        var out: [Int32] = []
        for name in (try? fm.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let p = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let close = stat.range(of: ")", options: .backwards) else { continue }
            let fields = stat[close.upperBound...].split(separator: " ")
            if fields.count > 2, Int32(fields[1]) == pid { out.append(p) }
        }
        return out
    }

    /// The process of MPI rank `rank` among mpirun's children (from OMPI_COMM_WORLD_RANK).
    static func rankProcess(_ rank: Int, ofMpirun pid: Int32) -> Int32? {
        for child in children(of: pid) {
            guard let env = FileManager.default.contents(atPath: "/proc/\(child)/environ") else { continue }
            let vars = env.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if vars.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return child }
        }
        return nil
    }
}

// MARK: run directory

/// What `spade-dist train` leaves in a run directory.
struct RunDirectory {
    let path: String
    var checkpoints: String { path + "/checkpoints" }
    var latest: String { checkpoints + "/latest.safetensors" }

    func checkpoint(step: Int) -> String {
        let d = String(step)
        return checkpoints + "/step_" + String(repeating: "0", count: max(0, 8 - d.count)) + d + ".safetensors"
    }

    func sample(step: Int) -> String {
        let d = String(step)
        return path + "/samples/step_" + String(repeating: "0", count: max(0, 8 - d.count)) + d + ".png"
    }

    /// Names in `checkpoints/`, sorted.
    func checkpointNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []).sorted()
    }

    /// Steps of the `step_XXXXXXXX.safetensors` files.
    func checkpointSteps() -> [Int] {
        checkpointNames().compactMap { n in
            guard n.hasPrefix("step_"), n.hasSuffix(".safetensors") else { return nil }
            return Int(n.dropFirst(5).dropLast(12))
        }.sorted()
    }

    /// The file name `latest.safetensors` points to (nil if it is not a symlink).
    func latestTarget() -> String? { try? FileManager.default.destinationOfSymbolicLink(atPath: latest) }

    /// Files anywhere below the run directory whose name marks an unfinished write.
    func temporaryFiles() -> [String] {
        let e = FileManager.default.enumerator(atPath: path)
        var out: [String] = []
        while let f = e?.nextObject() as? String {
            if (f as NSString).lastPathComponent.hasPrefix(".tmp") { out.append(f) }
        }
        return out
    }

    /// metrics.jsonl as parsed JSON objects, plus each line's raw text.
    func metrics() throws -> [(object: [String: Any], line: String)] {
        let text = try String(contentsOfFile: path + "/metrics.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (try XCTUnwrap(obj, "metrics.jsonl line is not an object: \(line)"), String(line))
        }
    }

    /// The `events.out.tfevents.*` files, sorted by name.
    func eventFiles() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .filter { $0.hasPrefix("events.out.tfevents.") }.sorted().map { path + "/" + $0 }
    }
}

/// The keys DESIGN §9 requires in every metrics.jsonl record, besides `step`.
let requiredMetricKeys = ["epoch", "loss_D", "loss_G", "D_Fake", "D_real", "G_GAN", "G_GANFeat", "lr_G", "lr_D",
                          "images_per_s", "data_wait_s", "comm_wait_s"]
/// The float keys that are functions of the model and data only (not of timing).
let lossKeys = ["loss_D", "loss_G", "D_Fake", "D_real", "G_GAN", "G_GANFeat", "lr_G", "lr_D"]

/// A metrics value as float32 (JSON numbers; `null` is NaN).
func metricFloat(_ any: Any?) -> Float? {
    if any is NSNull { return .nan }
    guard let n = any as? NSNumber, !(any is Bool) else { return nil }
    return Float(n.doubleValue)
}

/// The raw JSON token of `key` in one metrics line (e.g. `1.9876543`).
func rawToken(_ key: String, in line: String) -> String? {
    guard let r = line.range(of: "\"\(key)\":") else { return nil }
    return String(line[r.upperBound...].prefix { $0 != "," && $0 != "}" })
}

// MARK: TensorBoard event files

/// One decoded TensorBoard `Event`.
struct TBEvent {
    var wallTime: Double?
    var step: Int64 = 0
    var fileVersion: String?
    var scalars: [(tag: String, value: Float)] = []
    var images: [(tag: String, width: Int, height: Int, png: [UInt8])] = []
    /// SessionLog status (1 = START) when the event is a session log.
    var sessionStatus: Int?
}

struct EventFileError: Error, CustomStringConvertible {
    var description: String
}

enum EventFile {
    /// Records of a TFRecord file: each length and payload CRC is checked; the file must end
    /// exactly after the last record.
    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            guard i + 12 <= bytes.count else { throw EventFileError(description: "truncated record header at byte \(i)") }
            let lenBytes = Array(bytes[i..<(i + 8)])
            let length = Int(le64(lenBytes))
            guard le32(Array(bytes[(i + 8)..<(i + 12)])) == maskedCRC(lenBytes) else {
                throw EventFileError(description: "bad length CRC at byte \(i)")
            }
            guard i + 12 + length + 4 <= bytes.count else { throw EventFileError(description: "truncated record at byte \(i)") }
            let data = Array(bytes[(i + 12)..<(i + 12 + length)])
            guard le32(Array(bytes[(i + 12 + length)..<(i + 16 + length)])) == maskedCRC(data) else {
                throw EventFileError(description: "bad data CRC at byte \(i)")
            }
            out.append(data)
            i += 16 + length
        }
        return out
    }

    static func events(path: String) throws -> [TBEvent] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EventFileError(description: "cannot read \(path)")
        }
        return try records(Array(data)).map(decodeEvent)
    }

    // tensorflow/core/util/event.proto, framework/summary.proto
    static func decodeEvent(_ bytes: [UInt8]) throws -> TBEvent {
        var e = TBEvent()
        for f in try Proto.fields(bytes) {
            switch (f.number, f.value) {
            case (1, .fixed64(let v)): e.wallTime = Double(bitPattern: v)
            case (2, .varint(let v)): e.step = Int64(bitPattern: v)
            case (3, .bytes(let b)): e.fileVersion = String(decoding: b, as: UTF8.self)
            case (5, .bytes(let summary)):
                for value in try Proto.fields(summary) where value.number == 1 {
                    guard case .bytes(let vb) = value.value else { continue }
                    var tag = ""
                    var simple: Float?
                    var image: (Int, Int, [UInt8])?
                    for vf in try Proto.fields(vb) {
                        switch (vf.number, vf.value) {
                        case (1, .bytes(let t)): tag = String(decoding: t, as: UTF8.self)
                        case (2, .fixed32(let bits)): simple = Float(bitPattern: bits)
                        case (4, .bytes(let ib)):
                            var w = 0, h = 0, png: [UInt8] = []
                            for imf in try Proto.fields(ib) {
                                switch (imf.number, imf.value) {
                                case (1, .varint(let v)): h = Int(v)
                                case (2, .varint(let v)): w = Int(v)
                                case (4, .bytes(let p)): png = p
                                default: break
                                }
                            }
                            image = (w, h, png)
                        default: break
                        }
                    }
                    if let simple { e.scalars.append((tag, simple)) }
                    if let image { e.images.append((tag, image.0, image.1, image.2)) }
                }
            case (7, .bytes(let log)):
                e.sessionStatus = 0
                for lf in try Proto.fields(log) {
                    if lf.number == 1, case .varint(let v) = lf.value { e.sessionStatus = Int(v) }
                }
            default: break
            }
        }
        return e
    }

    static func le64(_ b: [UInt8]) -> UInt64 { b.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } }
    static func le32(_ b: [UInt8]) -> UInt32 { b.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) } }

    /// TensorFlow's masked CRC-32C.
    static func maskedCRC(_ data: [UInt8]) -> UInt32 {
        let c = crc32c(data)
        return ((c >> 15) | (c << 17)) &+ 0xa282_ead8
    }

    /// Bitwise CRC-32C (Castagnoli), no table: slow and obviously right.
    static func crc32c(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82f6_3b78 : crc >> 1 }
        }
        return ~crc
    }
}

/// Just enough protobuf wire-format decoding for Event / Summary / Image / SessionLog.
enum Proto {
    enum Value {
        case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32)
    }

    static func fields(_ b: [UInt8]) throws -> [(number: Int, value: Value)] {
        var i = 0
        func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < b.count, shift < 64 else { throw EventFileError(description: "bad varint") }
                let byte = b[i]; i += 1
                v |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return v }
                shift += 7
            }
        }
        func take(_ n: Int) throws -> [UInt8] {
            guard n >= 0, i + n <= b.count else { throw EventFileError(description: "field runs past the message") }
            defer { i += n }
            return Array(b[i..<(i + n)])
        }
        var out: [(Int, Value)] = []
        while i < b.count {
            let key = try varint()
            let number = Int(key >> 3)
            switch key & 7 {
            case 0: out.append((number, .varint(try varint())))
            case 1: out.append((number, .fixed64(EventFile.le64(try take(8)))))
            case 2: out.append((number, .bytes(try take(Int(try varint())))))
            case 5: out.append((number, .fixed32(EventFile.le32(try take(4)))))
            default: throw EventFileError(description: "unsupported wire type \(key & 7)")
            }
        }
        return out
    }
}

// MARK: images and checkpoints

/// An 8-bit RGB image read with libpng: (width, height, pixels HxWx3).
func readRGB(_ path: String) throws -> (width: Int, height: Int, pixels: [UInt8]) {
    let img = try readImage(path: path)
    XCTAssertEqual(img.channels, 3, "\(path) is not RGB")
    guard case .u8(let px) = img.pixels else { throw EventFileError(description: "\(path): not 8-bit") }
    return (img.width, img.height, px)
}

extension SafeTensorsFile {
    /// Same tensor names, dtypes, shapes and bytes.
    func sameTensors(as other: SafeTensorsFile) -> [String] {
        var differing: [String] = []
        for name in Set(names).union(other.names).sorted() where self[name] != other[name] { differing.append(name) }
        return differing
    }
}

/// A quick check that a checkpoint file is complete: parses, and metadata names the step.
func loadCheckpoint(_ path: String) throws -> SafeTensorsFile {
    let f = try SafeTensorsFile.read(path: path)
    XCTAssertEqual(f.metadata["format"], "spade-dist/1", path)
    return f
}

/// A scratch folder shared by one test class's tests, prepared once (e.g. with a training run
/// whose checkpoint several tests read) and removed in the class's tearDown.
final class SharedScratch: @unchecked Sendable {
    private let tag: String
    private let prepare: (String) throws -> Void
    private var directory: String?
    private let lock = NSLock()

    init(tag: String, prepare: @escaping (String) throws -> Void) { self.tag = tag; self.prepare = prepare }

    /// The folder, prepared on first use.
    func path() throws -> String {
        lock.lock(); defer { lock.unlock() }
        if let d = directory { return d }
        let d = try CLI.tempDir(tag)
        directory = d
        try prepare(d)
        return d
    }

    func remove() {
        lock.lock(); defer { lock.unlock() }
        if let d = directory { try? FileManager.default.removeItem(atPath: d) }
        directory = nil
    }
}
