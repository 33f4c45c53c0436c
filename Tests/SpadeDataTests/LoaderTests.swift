import Foundation
import XCTest
@testable import SpadeData

final class LoaderTests: XCTestCase {
    func syntheticOptions() -> DatasetOptions {
        var o = DatasetOptions()
        o.datasetMode = "synthetic"
        o.syntheticCount = 10
        o.syntheticSize = 40
        o.cropSize = 32
        o.loadSize = 36
        o.preprocessMode = "resize_and_crop"
        o.seed = 5
        return o
    }

    func testLoaderMatchesSamplerOrderAndResumes() throws {
        let ds = try Dataset(options: syntheticOptions())
        let sampler = ShardedSampler(count: 10, globalBatch: 4, rank: 1, worldSize: 2, seed: 5, serial: false)
        let loader = PrefetchingLoader(dataset: ds, sampler: sampler, depth: 2)
        var ref = sampler
        var batches: [Batch] = []
        var positions: [SamplerPosition] = []
        for _ in 0..<5 {  // 2 steps per epoch: crosses epochs
            let b = try loader.next()
            let step = ref.next()
            XCTAssertEqual(b.indices, step.indices)
            XCTAssertEqual(b.epoch, step.epoch)
            XCTAssertEqual(loader.position, step.positionAfter)
            XCTAssertEqual(b.semantics, try ds.makeBatch(indices: step.indices, epoch: step.epoch).semantics)
            batches.append(b)
            positions.append(loader.position)
        }
        XCTAssertEqual(loader.batchesReturned, 5)
        // Resume from the position after batch 2: the next batches are 3 and 4.
        let resumed = PrefetchingLoader(dataset: ds, sampler: ShardedSampler(count: 10, globalBatch: 4, rank: 1, worldSize: 2, seed: 5, serial: false, start: positions[2]))
        XCTAssertEqual(try resumed.next().image, batches[3].image)
        XCTAssertEqual(try resumed.next().image, batches[4].image)
    }

    func testPrefetchHidesLoadingBehindCompute() throws {
        let ds = try Dataset(options: syntheticOptions())
        let loader = PrefetchingLoader(dataset: ds, sampler: ShardedSampler(count: 10, globalBatch: 2, rank: 0, worldSize: 1, seed: 5, serial: false))
        _ = try loader.next()
        // While the caller computes (here: does nothing), the background thread decodes ahead
        // until `depth` batches are ready, so the next call takes one without decoding. Asserted
        // on the ready count, not on wall-clock waits (a shared host can stall any thread).
        for _ in 0..<6 {
            let deadline = Date().addingTimeInterval(60)
            while loader.readyCount < loader.depth && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
            XCTAssertEqual(loader.readyCount, loader.depth, "the loader did not decode ahead")
            _ = try loader.next()
        }
        loader.stop()
        // Batches already decoded may still come out; then next() fails instead of blocking.
        var thrown = false
        for _ in 0..<4 { do { _ = try loader.next() } catch { thrown = true; break } }
        XCTAssertTrue(thrown)
    }
}
