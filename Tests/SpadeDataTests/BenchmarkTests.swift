import Foundation
import XCTest
import SpadeData

final class BenchmarkTests: XCTestCase {
    func testBenchmarkFunctionsRun() throws {
        let b = try benchmarkLoading(count: 4, size: 32, preprocessMode: "resize_and_crop", repeats: 1)
        XCTAssertEqual(b.samples, 4)
        XCTAssertGreaterThan(b.samplesPerSecond, 0)
        XCTAssertTrue(b.json.contains("\"bench\":\"data\""))
        var o = DatasetOptions()
        o.syntheticCount = 8
        o.cropSize = 32
        o.preprocessMode = "none"
        let p = try benchmarkPrefetch(options: o, batchSize: 2, steps: 3, computeSeconds: 0.03)
        XCTAssertLessThan(p.maxWaitSeconds, 0.01, "\(p)")
    }

    /// The README numbers: SPADE_DATA_BENCH=1 swift test -c release --filter BenchmarkTests
    func testLoadingBenchmark256() throws {
        guard ProcessInfo.processInfo.environment["SPADE_DATA_BENCH"] != nil else { return }
        for mode in ["none", "resize_and_crop"] {
            print(try benchmarkLoading(count: 64, size: 256, preprocessMode: mode, repeats: 3))
        }
        var o = DatasetOptions()
        o.syntheticCount = 64
        o.cropSize = 256
        o.loadSize = 286
        o.preprocessMode = "resize_and_crop"
        print(try benchmarkPrefetch(options: o, batchSize: 4, steps: 20, computeSeconds: 0.25))
    }

    /// The Cityscapes-sized pre-scan of README.md (SPADE_DATA_BENCH=1); a small tree otherwise.
    func testCityscapesPrescanBenchmark() throws {
        let full = ProcessInfo.processInfo.environment["SPADE_DATA_BENCH"] != nil
        let b = try benchmarkCityscapesPrescan(train: full ? 2975 : 40, val: full ? 500 : 7)
        XCTAssertEqual(b.pairs, full ? 3475 : 47)
        XCTAssertEqual(b.files, b.pairs * 5)
        XCTAssertGreaterThan(b.prescanSeconds, 0)
        print(b)
    }
}
