import Foundation
import SpadeCore
import SpadeTrain
import XCTest

final class MetricsLogTests: XCTestCase {
    func testLineHasTheContractKeysAndIsJSON() throws {
        var r = MetricsRecord(step: 1, epoch: 0)
        r.loss_D = 1.5
        r.lr_G = 0.0001
        r.images_per_s = 12.25
        r.extras["skipped_steps"] = 2
        let line = r.jsonLine()
        XCTAssertEqual(line, #"{"step":1,"epoch":0,"loss_D":1.5,"loss_G":0.0,"D_Fake":0.0,"D_real":0.0,"G_GAN":0.0,"G_GANFeat":0.0,"lr_G":0.0001,"lr_D":0.0,"images_per_s":12.25,"data_wait_s":0.0,"comm_wait_s":0.0,"skipped_steps":2.0}"#)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        for key in ["step", "epoch", "loss_D", "loss_G", "D_Fake", "D_real", "G_GAN", "G_GANFeat", "lr_G", "lr_D",
                    "images_per_s", "data_wait_s", "comm_wait_s"] {
            XCTAssertNotNil(obj[key], key)
        }
        XCTAssertEqual(MetricsRecord(jsonLine: line), r)
    }

    func testFloatsRoundTripFloat32AndNonFiniteIsNull() throws {
        var rng = SplitMix64(seed: 23)
        for _ in 0..<2000 {
            var x: Float
            repeat { x = Float(bitPattern: rng.next()) } while !x.isFinite
            var r = MetricsRecord(step: 3, epoch: 1)
            r.G_GAN = x
            let line = r.jsonLine()
            let token = line.components(separatedBy: "\"G_GAN\":")[1].split(separator: ",")[0]
            XCTAssertEqual(Float(String(token))?.bitPattern, x.bitPattern, "\(x) written as \(token)")
            XCTAssertEqual(MetricsRecord(jsonLine: line)?.G_GAN.bitPattern, x.bitPattern, line)
        }
        var r = MetricsRecord(step: 4, epoch: 1)
        r.loss_D = .nan
        r.loss_G = .infinity
        r.D_real = -.infinity
        let line = r.jsonLine()
        XCTAssert(line.contains(#""loss_D":null,"loss_G":null"#), line)
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(line.utf8)))
        let back = try XCTUnwrap(MetricsRecord(jsonLine: line))
        XCTAssert(back.loss_D.isNaN && back.loss_G.isNaN && back.D_real.isNaN)
    }

    func testAppendReadAndTruncateOnResume() throws {
        let dir = try makeTempDir("metrics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/metrics.jsonl"
        do {
            let log = try MetricsLog(path: path)
            for s in 1...10 { var r = MetricsRecord(step: s, epoch: s / 4); r.loss_G = Float(s) / 3; try log.append(r) }
            // Each line is on disk without close (no user-space buffering).
            XCTAssertEqual(try MetricsLog.read(path: path).count, 10)
            try log.close()
        }
        // A torn last line (crash mid-write) is skipped by the reader.
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile(); h.write(Data(#"{"step":11,"epo"#.utf8)); h.closeFile()
        XCTAssertEqual(try MetricsLog.read(path: path).map(\.step), Array(1...10))
        // Resuming from step 6 drops records 7...
        let log = try MetricsLog(path: path, keepingUpToStep: 6)
        try log.append(MetricsRecord(step: 7, epoch: 1))
        try log.close()
        let records = try MetricsLog.read(path: path)
        XCTAssertEqual(records.map(\.step), [1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(records[4].loss_G, Float(5) / 3)
        XCTAssertEqual(records[4]["loss_G"], Float(5) / 3)
    }
}

/// Reads TFRecord files back, checking both CRCs, and decodes the protobuf fields we write.
struct EventFileReader {
    struct Event { var wallTime: Double?; var step: Int64?; var fileVersion: String?; var values: [Value] = [] }
    struct Value { var tag = ""; var simple: Float?; var image: (height: Int, width: Int, colorspace: Int, png: [UInt8])? }

    static func records(_ buf: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        var i = 0
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(buf[at + $1]) << (8 * UInt64($1)) } }
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(buf[at + $1]) << (8 * UInt32($1)) } }
        while i < buf.count {
            guard i + 12 <= buf.count else { throw Bad("truncated header at \(i)") }
            let len = Int(u64(i))
            guard u32(i + 8) == TFRecord.maskedCRC32C(Array(buf[i..<(i + 8)])) else { throw Bad("length CRC at \(i)") }
            guard i + 12 + len + 4 <= buf.count else { throw Bad("truncated data at \(i)") }
            let data = Array(buf[(i + 12)..<(i + 12 + len)])
            guard u32(i + 12 + len) == TFRecord.maskedCRC32C(data) else { throw Bad("data CRC at \(i)") }
            out.append(data)
            i += 12 + len + 4
        }
        return out
    }

    struct Bad: Error { var m: String; init(_ m: String) { self.m = m } }

    /// (field, wire type, varint or fixed value, length-delimited payload)
    static func fields(_ b: [UInt8]) throws -> [(Int, Int, UInt64, [UInt8])] {
        var out: [(Int, Int, UInt64, [UInt8])] = []
        var i = 0
        func varint() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard i < b.count else { throw Bad("varint past end") }
                let byte = b[i]; i += 1
                v |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return v }
                shift += 7
            }
        }
        func fixed(_ n: Int) throws -> UInt64 {
            guard i + n <= b.count else { throw Bad("fixed past end") }
            defer { i += n }
            return (0..<n).reduce(UInt64(0)) { $0 | UInt64(b[i + $1]) << (8 * UInt64($1)) }
        }
        while i < b.count {
            let key = try varint()
            let field = Int(key >> 3), wire = Int(key & 7)
            switch wire {
            case 0: out.append((field, 0, try varint(), []))
            case 1: out.append((field, 1, try fixed(8), []))
            case 5: out.append((field, 5, try fixed(4), []))
            case 2:
                let n = Int(try varint())
                guard i + n <= b.count else { throw Bad("bytes past end") }
                out.append((field, 2, 0, Array(b[i..<(i + n)]))); i += n
            default: throw Bad("wire type \(wire)")
            }
        }
        return out
    }

    static func events(path: String) throws -> [Event] {
        let buf = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        return try records(buf).map { rec in
            var e = Event()
            for (f, _, n, payload) in try fields(rec) {
                switch f {
                case 1: e.wallTime = Double(bitPattern: n)
                case 2: e.step = Int64(bitPattern: n)
                case 3: e.fileVersion = String(decoding: payload, as: UTF8.self)
                case 5:
                    for (vf, _, _, vb) in try fields(payload) where vf == 1 {
                        var v = Value()
                        for (ff, _, fn, fb) in try fields(vb) {
                            switch ff {
                            case 1: v.tag = String(decoding: fb, as: UTF8.self)
                            case 2: v.simple = Float(bitPattern: UInt32(fn))
                            case 4:
                                var img = (height: 0, width: 0, colorspace: 0, png: [UInt8]())
                                for (imf, _, imn, imb) in try fields(fb) {
                                    switch imf {
                                    case 1: img.height = Int(imn)
                                    case 2: img.width = Int(imn)
                                    case 3: img.colorspace = Int(imn)
                                    case 4: img.png = imb
                                    default: break
                                    }
                                }
                                v.image = img
                            default: break
                            }
                        }
                        e.values.append(v)
                    }
                default: break
                }
            }
            return e
        }
    }
}

final class TensorBoardTests: XCTestCase {
    func testCRC32CKnownVectors() {
        XCTAssertEqual(crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(crc32c([]), 0)
        XCTAssertEqual(crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)   // RFC 3720 B.4
        XCTAssertEqual(crc32c([UInt8](repeating: 0xff, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(crc32c(Array(0..<32)), 0x46DD_794E)
    }

    func testMaskedCRCAndFraming() {
        let crc = crc32c(Array("123456789".utf8))
        XCTAssertEqual(TFRecord.maskedCRC32C(Array("123456789".utf8)), ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8)
        let framed = TFRecord.frame([1, 2, 3])
        XCTAssertEqual(framed.count, 8 + 4 + 3 + 4)
        XCTAssertEqual(Array(framed[0..<8]), [3, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(try EventFileReader.records(framed), [[1, 2, 3]])
        var corrupt = framed
        corrupt[13] ^= 1
        XCTAssertThrowsError(try EventFileReader.records(corrupt))
    }

    func testEventsDecodeBack() throws {
        let dir = try makeTempDir("tb")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(directory: dir, wallTime: 1_700_000_000.25)
        XCTAssert((tb.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.1700000000."), tb.path)
        try tb.addScalars([("loss/D", 1.25), ("loss/G", -3.5e-7)], step: 10, wallTime: 1_700_000_001.5)
        try tb.addScalar("lr/G", 0.0001, step: 300, wallTime: 1_700_000_002)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47] + [UInt8](repeating: 7, count: 300)
        try tb.addImage("samples", png: png, width: 192, height: 256, step: 50, wallTime: 1_700_000_003)
        try tb.sync()
        let events = try EventFileReader.events(path: tb.path)
        XCTAssertEqual(events.count, 4)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertEqual(events[0].wallTime, 1_700_000_000.25)
        XCTAssertEqual(events[1].step, 10)
        XCTAssertEqual(events[1].wallTime, 1_700_000_001.5)
        XCTAssertEqual(events[1].values.map(\.tag), ["loss/D", "loss/G"])
        XCTAssertEqual(events[1].values.map(\.simple), [1.25, -3.5e-7])
        XCTAssertEqual(events[2].step, 300)
        XCTAssertEqual(events[2].values.first?.simple, 0.0001)
        let img = try XCTUnwrap(events[3].values.first?.image)
        XCTAssertEqual(events[3].values.first?.tag, "samples")
        XCTAssertEqual(img.height, 256)
        XCTAssertEqual(img.width, 192)
        XCTAssertEqual(img.colorspace, 3)
        XCTAssertEqual(img.png, png)
    }

    /// Cross-check with the real TensorBoard reader when python3 has it (never installed by the test).
    func testTensorBoardPackageReadsOurFile() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import tensorboard.backend.event_processing.event_accumulator"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        guard (try? probe.run()) != nil else { throw XCTSkip("python3 not available") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("python3 has no tensorboard package; cross-check skipped") }
        let dir = try makeTempDir("tbpy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tb = try TensorBoardWriter(directory: dir)
        for s in 1...5 { try tb.addScalars([("loss_D", Float(s) * 0.5), ("loss_G", 1)], step: s) }
        try tb.addImage("samples", png: [0x89, 0x50, 0x4E, 0x47, 1, 2, 3], width: 96, height: 32, step: 5)
        try tb.sync()
        let script = """
            import sys
            from tensorboard.backend.event_processing import event_accumulator as ea
            acc = ea.EventAccumulator(sys.argv[1]); acc.Reload()
            print(",".join("%d:%g" % (e.step, e.value) for e in acc.Scalars("loss_D")))
            im = acc.Images("samples")[0]
            print(im.step, im.width, im.height, len(im.encoded_image_string))
            """
        let py = Process()
        py.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        py.arguments = ["python3", "-c", script, dir]
        let out = Pipe()
        py.standardOutput = out
        try py.run()
        py.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), "1:0.5,2:1,3:1.5,4:2,5:2.5\n5 96 32 7")
    }
}
