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

/// Result of `benchmarkCityscapesPrescan`.
public struct PrescanBenchmark: Sendable, CustomStringConvertible {
    public var pairs: Int
    public var files: Int
    /// Listing the tree: walk, natural sort, pairing (`Dataset(options:)`).
    public var listSeconds: Double
    /// The whole pre-scan (listing + decoding and checking every file) on one thread and on `threads`.
    public var prescanSeconds: Double
    public var threads: Int
    public var prescanThreadedSeconds: Double

    public var description: String {
        String(format: "prescan: Cityscapes tree of %d pairs (%d files): listing %.3f s, pre-scan %.2f s on 1 thread, %.2f s on %d threads",
               pairs, files, listSeconds, prescanSeconds, prescanThreadedSeconds, threads)
    }
}

/// Times the listing and the pre-scan of a generated tree in the official Cityscapes layout
/// (`train` + `val` samples over 18 + 3 cities, each with its labelIds, instanceIds, color and
/// polygons files and its leftImg8bit image, `size` x `size`/2 pixels), written to a temporary
/// directory and removed afterwards. Phase train and test are both listed and checked.
public func benchmarkCityscapesPrescan(train: Int = 2975, val: Int = 500, size: Int = 16,
                                       threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> PrescanBenchmark {
    let root = FileManager.default.temporaryDirectory.path + "/spade-prescan-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let w = size, h = max(1, size / 2)
    let label = try encodePNG(width: w, height: h, channels: 1, pixels: (0..<(w * h)).map { UInt8(7 + $0 % 20) })
    let instance = try encodePNG16(width: w, height: h, channels: 1, pixels: (0..<(w * h)).map { UInt16(26000 + $0 % 5) })
    let image = try encodePNG(width: w, height: h, channels: 3, pixels: (0..<(w * h * 3)).map { UInt8($0 % 256) })
    var files = 0
    for (split, count, cities) in [("train", train, 18), ("val", val, 3)] {
        for i in 0..<count {
            let city = "city\(i % cities)"
            let stem = String(format: "%@_%06d_%06d", city, i / cities, 19)
            let gt = "\(root)/gtFine/\(split)/\(city)", left = "\(root)/leftImg8bit/\(split)/\(city)"
            if i < cities {
                try FileManager.default.createDirectory(atPath: gt, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(atPath: left, withIntermediateDirectories: true)
            }
            try writeFileAtomically(path: "\(gt)/\(stem)_gtFine_labelIds.png", bytes: label)
            try writeFileAtomically(path: "\(gt)/\(stem)_gtFine_instanceIds.png", bytes: instance)
            try writeFileAtomically(path: "\(gt)/\(stem)_gtFine_color.png", bytes: image)
            try writeFileAtomically(path: "\(gt)/\(stem)_gtFine_polygons.json", bytes: Array("{}\n".utf8))
            try writeFileAtomically(path: "\(left)/\(stem)_leftImg8bit.png", bytes: image)
            files += 5
        }
    }
    var o = DatasetOptions()
    o.datasetMode = "cityscapes"
    o.dataroot = root
    o.labelNC = 35
    o.noInstance = false
    o.preprocessMode = "fixed"
    o.cropSize = w
    o.loadSize = w
    o.aspectRatio = 2
    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    }
    var test = o
    test.phase = "test"
    var issues: [DataIssue] = []
    let list = try seconds { for opts in [o, test] { _ = try Dataset(options: opts) } }
    let one = seconds { for opts in [o, test] { issues += prescan(opts, threads: 1) } }
    let many = seconds { for opts in [o, test] { issues += prescan(opts, threads: threads) } }
    if !issues.isEmpty { throw DataError(issues) }
    return PrescanBenchmark(pairs: train + val, files: files, listSeconds: list, prescanSeconds: one,
                            threads: threads, prescanThreadedSeconds: many)
}
