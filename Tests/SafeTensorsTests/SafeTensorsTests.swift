import XCTest
import SafeTensors
import SpadeTestSupport

final class SafeTensorsTests: XCTestCase {
    func testRoundTripKeepsDtypesShapesAndMetadata() throws {
        var f = SafeTensorsFile(metadata: ["format": "spade-dist/1", "config": "a: \"b\"\nc: 1"])
        f["w"] = TensorRecord(shape: [2, 3], floats: [1, -2, 3.5, 0, .pi, -0.0])
        f["step"] = TensorRecord(shape: [], int64s: [42])
        f["label"] = TensorRecord(shape: [2], int32s: [7, -1])
        f["px"] = TensorRecord(dtype: .u8, shape: [3], bytes: [0, 128, 255])
        let back = try SafeTensorsFile.parse(f.serialized())
        XCTAssertEqual(back.tensors, f.tensors)
        XCTAssertEqual(back.metadata, f.metadata)
        XCTAssertEqual(back["step"]?.int64s, [42])
    }

    func testReadsEveryReferenceFixture() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Fixtures.directory)
            .filter { $0.hasSuffix(".safetensors") }
        XCTAssertEqual(names.count, 13)
        for n in names {
            let f = try SafeTensorsFile.read(path: "\(Fixtures.directory)/\(n)")
            XCTAssertFalse(f.tensors.isEmpty, n)
        }
        let init0 = try Fixtures.load("tiny_init")
        XCTAssertEqual(init0["netG.fc.weight"]?.shape, [128, 5, 3, 3])
        XCTAssertEqual(init0["netG.head_0.norm_0.param_free_norm.num_batches_tracked"]?.dtype, .i64)
    }

    func testMalformedFilesAreErrorsNotCrashes() throws {
        var good = SafeTensorsFile()
        good["x"] = TensorRecord(shape: [4], floats: [1, 2, 3, 4])
        let bytes = good.serialized()
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("short", [1, 2, 3]),
            ("header too long", [0xff, 0xff, 0, 0, 0, 0, 0, 0] + Array(bytes[8...])),
            ("truncated data", Array(bytes.dropLast(3))),
            ("garbage json", Array(bytes[0..<8]) + Array(repeating: UInt8(ascii: "x"), count: bytes.count - 8)),
        ]
        for (name, b) in cases {
            XCTAssertThrowsError(try SafeTensorsFile.parse(b, path: name), name) { err in
                XCTAssertTrue("\(err)".contains(name), "\(err)")
            }
        }
        // Offsets that disagree with the shape.
        let bad = Array(#"{"x":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}}"#.utf8)
        var lenBytes = [UInt8](repeating: 0, count: 8); lenBytes[0] = UInt8(bad.count)
        XCTAssertThrowsError(try SafeTensorsFile.parse(lenBytes + bad + [UInt8](repeating: 0, count: 16)))
        let badType = Array(#"{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#.utf8)
        lenBytes[0] = UInt8(badType.count)
        XCTAssertThrowsError(try SafeTensorsFile.parse(lenBytes + badType + [0, 0, 0, 0]))
    }

    /// Hostile headers: a shape whose byte size overflows Int, offsets near Int.max, and
    /// overlapping data are errors naming the tensor; an empty tensor overlaps nothing.
    func testHostileShapesAndOffsetsAreErrors() throws {
        func file(_ header: String, data: Int) -> [UInt8] {
            var h = Array(header.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            return (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xff) } + h + [UInt8](repeating: 0, count: data)
        }
        let cases: [(String, String, Int, String)] = [
            ("huge shape", #"{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}}"#, 16, "too large"),
            ("shape x 4 bytes overflows", #"{"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,0]}}"#, 0, "too large"),
            ("offsets near Int.max", #"{"w":{"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]}}"#, 8, "outside the file"),
            ("overlap", #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#, 8, "overlap"),
        ]
        for (what, header, data, reason) in cases {
            XCTAssertThrowsError(try SafeTensorsFile.parse(file(header, data: data), path: what), what) { err in
                XCTAssert("\(err)".contains(what) && "\(err)".contains(reason), "\(what): \(err)")
            }
        }
        let empty = file(#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"e":{"dtype":"I32","shape":[0],"data_offsets":[0,0]}}"#, data: 4)
        XCTAssertEqual(try SafeTensorsFile.parse(empty).names, ["a", "e"])
    }

    /// Float tensors read as integers saturate instead of trapping (a float `optG.step` of 1e30).
    func testIntegerViewOfFloatsNeverTraps() {
        let t = TensorRecord(shape: [5], floats: [1e30, -1e30, .nan, .infinity, -2.7])
        XCTAssertEqual(t.int64s, [.max, .min, 0, .max, -2])
    }

    /// The inputs fuzz/run.sh safetensors crashed on (fuzz/regressions/safetensors): each is
    /// rejected or parsed, and what parses converts and round-trips like any file.
    func testFuzzRegressions() throws {
        let dir = Fixtures.packageRoot + "/fuzz/regressions/safetensors"
        let names = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let bytes = try Array(XCTUnwrap(FileManager.default.contents(atPath: dir + "/" + name)))
            guard let f = try? SafeTensorsFile.parse(bytes, path: name) else { continue }
            for t in f.tensors.values { XCTAssertEqual(t.int64s.count, t.count, name) }
            let back = try SafeTensorsFile.parse(f.serialized())
            XCTAssertEqual(back.tensors, f.tensors, name)
            XCTAssertEqual(back.metadata, f.metadata, name)
        }
    }
}
