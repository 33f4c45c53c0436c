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
}
