import Foundation
import SafeTensors
import SpadeTestSupport
import XCTest
@testable import SpadeData

/// The exact tensors of reference/README.md: preprocess.safetensors and the
/// inputs of iteration.safetensors built from tiny_data.
final class FixtureTests: XCTestCase {
    func i32(_ f: SafeTensorsFile, _ name: String) throws -> [Int32] { try f.i64(name).map { Int32($0) } }

    func testNormalizationLUTIsBitExact() throws {
        let f = try Fixtures.load("preprocess")
        let lut = try f.f("image.lut")
        XCTAssertEqual(lut.map(\.bitPattern), imageNormalizationLUT.map(\.bitPattern))
        let u8 = try f.i64("image.u8").map { UInt8($0) }
        let shape = try f.shape("image.u8")  // [2,6,7,3]
        let x = normalizeImage(u8, batch: shape[0], height: shape[1], width: shape[2])
        XCTAssertEqual(x.map(\.bitPattern), try f.f("image.normalized").map(\.bitPattern))
    }

    func testOneHotPlainAndDontcare() throws {
        let f = try Fixtures.load("preprocess")
        let plain = try i32(f, "plain.label")
        let s = try makeSemantics(rawLabels: plain, instances: nil, batch: 2, height: 6, width: 7, labelNC: 5, containDontcare: false)
        XCTAssertEqual(s, try f.f("plain.one_hot"))

        let dc = try i32(f, "dontcare.label")
        XCTAssertTrue(dc.contains(255))
        let oh = try makeSemantics(rawLabels: dc, instances: nil, batch: 2, height: 6, width: 7, labelNC: 4, containDontcare: true)
        XCTAssertEqual(oh, try f.f("dontcare.one_hot"))
        // 255 without contain_dontcare_label is an error (NVlabs would fail later).
        XCTAssertThrowsError(try makeSemantics(rawLabels: dc, instances: nil, batch: 2, height: 6, width: 7, labelNC: 4, containDontcare: false))
    }

    func testInstanceEdgesAndFullSemantics() throws {
        let f = try Fixtures.load("preprocess")
        let inst = try i32(f, "dontcare.instance")
        let hw = 42
        var edges: [Float] = []
        for b in 0..<2 { edges += instanceEdges(Array(inst[(b * hw)..<((b + 1) * hw)]), height: 6, width: 7) }
        XCTAssertEqual(edges, try f.f("dontcare.edges"))
        let s = try makeSemantics(rawLabels: try i32(f, "dontcare.label"), instances: inst, batch: 2, height: 6, width: 7,
                                  labelNC: 4, containDontcare: true)
        XCTAssertEqual(try f.shape("dontcare.semantics"), [2, 6, 6, 7])
        XCTAssertEqual(s, try f.f("dontcare.semantics"))
    }

    func tinyOptions() -> DatasetOptions {
        var o = DatasetOptions()
        o.datasetMode = "custom"
        o.labelDir = Fixtures.directory + "/tiny_data/labels"
        o.imageDir = Fixtures.directory + "/tiny_data/images"
        o.labelNC = 5
        o.noInstance = true
        o.preprocessMode = "none"
        o.noFlip = true
        o.cropSize = 64
        o.loadSize = 64
        o.serialBatches = true
        return o
    }

    func testTinyDataBatchEqualsIterationInputs() throws {
        let f = try Fixtures.load("iteration")
        let ds = try Dataset(options: tinyOptions())
        XCTAssertEqual(ds.count, 4)
        XCTAssertEqual((0..<4).map { ds.name($0) }, ["0000", "0001", "0002", "0003"])
        let b = try ds.makeBatch(indices: [0, 1], epoch: 0)
        XCTAssertEqual([b.batchSize, b.semanticNC, b.height, b.width], [2, 5, 64, 64])
        XCTAssertEqual(b.semantics.map(\.bitPattern), try f.f("input.semantics").map(\.bitPattern))
        XCTAssertEqual(b.image.map(\.bitPattern), try f.f("input.image").map(\.bitPattern))
        XCTAssertEqual(b.labels, try i32(f, "input.label"))
        XCTAssertEqual(b.names, ["0000", "0001"])
        // Raw pixels too.
        let raw0 = try ds.loadRaw(0), raw1 = try ds.loadRaw(1)
        XCTAssertEqual((raw0.image + raw1.image).map { Int64($0) }, try f.i64("input.image_u8"))
    }

    func testTinyDataThroughSamplerAndLoaderInSerialOrder() throws {
        let f = try Fixtures.load("iteration_b4")
        let ds = try Dataset(options: tinyOptions())
        XCTAssertTrue(prescan(tinyOptions(), globalBatch: 4).isEmpty)
        // Two ranks x batch 2, serial order: rank r gets samples [2r, 2r+1].
        var parts: [Batch] = []
        for r in 0..<2 {
            let s = ShardedSampler(count: 4, globalBatch: 4, rank: r, worldSize: 2, seed: 0, serial: true)
            let loader = PrefetchingLoader(dataset: ds, sampler: s)
            parts.append(try loader.next())
            XCTAssertEqual(loader.position, SamplerPosition(epoch: 0, index: 4))
        }
        XCTAssertEqual((parts[0].semantics + parts[1].semantics).map(\.bitPattern), try f.f("input.semantics").map(\.bitPattern))
        XCTAssertEqual((parts[0].image + parts[1].image).map(\.bitPattern), try f.f("input.image").map(\.bitPattern))
    }
}
