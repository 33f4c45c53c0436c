import Foundation

/// Result of `benchmarkLoading`.
public struct LoadingBenchmark: Sendable, CustomStringConvertible {
    public var samples: Int
    public var size: Int
    public var preprocessMode: String
    /// Decoding only (label PNG + image PNG), samples per second.
    public var decodeSamplesPerSecond: Double
    /// Decoding + preprocessing + semantics + normalisation (Dataset.makeBatch), samples per second.
    public var samplesPerSecond: Double

    public var description: String {
        String(format: "data: %d x %dx%d PNG pairs, preprocess_mode %@, one thread: decode %.0f samples/s, decode+preprocess %.0f samples/s (%.2f ms/sample)",
               samples, size, size, preprocessMode, decodeSamplesPerSecond, samplesPerSecond, 1000 / samplesPerSecond)
    }

    /// One JSON object (for `spade-dist bench data`).
    public var json: String {
        String(format: "{\"bench\":\"data\",\"samples\":%d,\"size\":%d,\"preprocess_mode\":\"%@\",\"decode_samples_per_s\":%.1f,\"samples_per_s\":%.1f}",
               samples, size, preprocessMode, decodeSamplesPerSecond, samplesPerSecond)
    }
}

/// Decoded + preprocessed samples per second for `size` x `size` PNG pairs
/// (8-bit label, RGB image) on the calling thread. Uses the custom dataset in
/// `directory` if given, else writes `count` synthetic pairs to a temporary
/// directory (removed afterwards). `preprocessMode` "resize_and_crop" uses
/// NVlabs' 286/256 ratio (load_size = size * 286 / 256, crop_size = size) with
/// flips; "none" feeds the pairs as they are.
public func benchmarkLoading(directory: String? = nil, count: Int = 64, size: Int = 256,
                             preprocessMode: String = "resize_and_crop", repeats: Int = 2) throws -> LoadingBenchmark {
    var root = directory ?? ""
    var temp: String? = nil
    if directory == nil {
        let t = FileManager.default.temporaryDirectory.path + "/spade-data-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try writeSyntheticDataset(to: t, count: count, size: size, classes: 8, seed: 1, instances: false)
        temp = t
        root = t
    }
    defer { if let t = temp { try? FileManager.default.removeItem(atPath: t) } }
    var o = DatasetOptions()
    o.datasetMode = "custom"
    o.dataroot = root
    o.labelNC = 8
    o.noInstance = true
    o.preprocessMode = preprocessMode
    o.cropSize = size
    o.loadSize = preprocessMode == "none" ? size : size * 286 / 256
    o.noFlip = preprocessMode == "none"
    let ds = try Dataset(options: o)
    let n = ds.count

    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }
    // Warm-up (page cache, allocator).
    _ = try ds.makeBatch(indices: [0], epoch: 0)
    let decode = try seconds {
        for _ in 0..<repeats {
            for i in 0..<n {
                _ = try readImage(path: ds.files[i].label)
                _ = try readImage(path: ds.files[i].image)
            }
        }
    }
    let full = try seconds {
        for r in 0..<repeats {
            for i in 0..<n { _ = try ds.makeBatch(indices: [i], epoch: r) }
        }
    }
    let total = Double(n * repeats)
    return LoadingBenchmark(samples: n, size: size, preprocessMode: preprocessMode,
                            decodeSamplesPerSecond: total / decode, samplesPerSecond: total / full)
}

/// Result of `benchmarkPrefetch`.
public struct PrefetchBenchmark: Sendable, CustomStringConvertible {
    public var steps: Int
    public var batchSize: Int
    public var computeSeconds: Double
    public var meanWaitSeconds: Double
    public var maxWaitSeconds: Double
    /// Time to make one batch on the calling thread (what the wait would be without prefetching).
    public var loadSecondsPerBatch: Double

    public var description: String {
        String(format: "prefetch: %d steps, batch %d, compute %.1f ms/step, loading %.1f ms/batch, wait for data mean %.3f ms, max %.3f ms",
               steps, batchSize, computeSeconds * 1000, loadSecondsPerBatch * 1000, meanWaitSeconds * 1000, maxWaitSeconds * 1000)
    }
}

/// Shows that the loader hides decoding behind compute: a loop that "computes"
/// (sleeps) `computeSeconds` per step and takes batches from a
/// PrefetchingLoader; reports the time `next()` waited (the first step,
/// which nothing can hide, is excluded).
public func benchmarkPrefetch(options: DatasetOptions, batchSize: Int, steps: Int, computeSeconds: Double) throws -> PrefetchBenchmark {
    let ds = try Dataset(options: options)
    let t0 = DispatchTime.now().uptimeNanoseconds
    _ = try ds.makeBatch(indices: Array(0..<batchSize), epoch: 0)
    let load = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    let loader = PrefetchingLoader(dataset: ds, sampler: ShardedSampler(count: ds.count, globalBatch: batchSize, rank: 0, worldSize: 1,
                                                                         seed: options.seed, serial: options.serialBatches))
    defer { loader.stop() }
    _ = try loader.next()
    var waits: [Double] = []
    for _ in 0..<steps {
        Thread.sleep(forTimeInterval: computeSeconds)
        _ = try loader.next()
        waits.append(loader.lastWaitSeconds)
    }
    return PrefetchBenchmark(steps: steps, batchSize: batchSize, computeSeconds: computeSeconds,
                             meanWaitSeconds: waits.reduce(0, +) / Double(max(1, waits.count)),
                             maxWaitSeconds: waits.max() ?? 0, loadSecondsPerBatch: load)
}
