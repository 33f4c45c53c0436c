import Foundation
import SafeTensors
import SpadeCore
import SpadeData
import SpadeDist
import SpadeNN

/// `spade-dist generate`: the eval-mode generator (running statistics, stored
/// spectral-norm vectors) over a folder of label maps, one PNG per label file, or over a whole
/// split of the config's dataset in NVlabs test.py's layout.
public enum Generation {
    /// The config stored in a checkpoint (or `configPath` when given) and the loaded generator.
    /// `isTrain` false gives the config NVlabs' test-time defaults where they differ (only keys the
    /// config file does not set; a checkpoint's stored config sets every key).
    public static func loadGenerator(checkpoint path: String, configPath: String?, overrides: [String] = [],
                                     isTrain: Bool = true) throws -> (TrainConfig, SPADEGenerator) {
        let file = try Checkpoint.read(path: path)
        var config: TrainConfig
        if let configPath {
            config = try TrainConfig.load(path: configPath, overrides: overrides, isTrain: isTrain)
        } else if let yaml = file.metadata["config"] {
            config = try TrainConfig.parse(yaml: yaml, source: "\(path) (stored config)", overrides: overrides)
        } else {
            throw CheckpointError(path: path, "holds no config (not written by spade-dist); pass --config")
        }
        let generator = SPADEGenerator(config.modelConfig)
        try Checkpoint.loadNet(file, path: path, prefix: "netG.", into: generator.state)
        return (config, generator)
    }

    /// Label files (PNG) of `directory` in sorted order.
    public static func labelFiles(_ directory: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw DataError(path: directory, "label directory does not exist")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.lowercased().hasSuffix(".png") }.sorted()
        guard !names.isEmpty else { throw DataError(path: directory, "no .png label files") }
        return names
    }

    /// Semantics (1, C, H, W) for one label file at the generator's size (nearest resize). Label
    /// maps are read as in training: class ids, or colours through `label_colors` with
    /// `label_encoding: rgb`.
    public static func semantics(labelPath: String, instancePath: String?, config: TrainConfig) throws -> (semantics: [Float], labels: [Int32]) {
        let h = config.imageHeight, w = config.imageWidth
        var colors: LabelColorTable? = nil
        if config.label_encoding == "rgb" {
            guard !config.label_colors.isEmpty else {
                throw ConfigError(key: "label_colors", "required by generate with label_encoding rgb (it does not read an .emd)")
            }
            colors = LabelColorTable(labelColors: config.label_colors, labelNC: config.label_nc)
        }
        func load(_ path: String, colors: LabelColorTable?) throws -> [Int32] {
            let img = try readImage(path: path)
            let values: [Int32]
            if let colors {
                values = try colors.classValues(img, path: path)
            } else if let ids = img.indexValues() {
                values = ids
            } else {
                throw DataError(path: path, "is not a single-channel (gray or palette) label map")
            }
            return resizeNearest(values, fromHeight: img.height, fromWidth: img.width, toHeight: h, toWidth: w)
        }
        let raw = config.datasetOptions.storedLabelValues(try load(labelPath, colors: colors))
        if let problem = labelProblem(raw, labelNC: config.label_nc, containDontcare: config.contain_dontcare_label) {
            throw DataError(path: labelPath, problem)
        }
        var instances: [Int32]? = nil
        if !config.no_instance {
            guard let instancePath else { throw DataError(path: labelPath, "the model uses instance maps: pass --instances DIR") }
            instances = try load(instancePath, colors: nil)
        }
        let sem = try makeSemantics(rawLabels: raw, instances: instances, batch: 1, height: h, width: w,
                                    labelNC: config.label_nc, containDontcare: config.contain_dontcare_label)
        let idx = try labelToIndex(raw, labelNC: config.label_nc, containDontcare: config.contain_dontcare_label, path: labelPath)
        return (sem, idx)
    }

    static func resizeNearest(_ v: [Int32], fromHeight sh: Int, fromWidth sw: Int, toHeight h: Int, toWidth w: Int) -> [Int32] {
        if sh == h && sw == w { return v }
        let iy = Resample.nearestIndices(output: h, input: sh), ix = Resample.nearestIndices(output: w, input: sw)
        var out = [Int32](repeating: 0, count: h * w)
        for y in 0..<h { for x in 0..<w { out[y * w + x] = v[iy[y] * sw + ix[x]] } }
        return out
    }

    /// A [-1, 1] image value as an 8-bit level (the inverse of the input normalisation, rounded).
    @inline(__always) public static func byte(_ v: Float) -> UInt8 {
        UInt8(max(0, min(255, ((v + 1) / 2 * 255).rounded())))
    }

    /// 8-bit RGB pixels (H, W, 3) of generated image `i` of an NCHW [-1, 1] tensor.
    public static func rgbBytes(_ t: [Float], index i: Int, height h: Int, width w: Int) -> [UInt8] {
        var px = [UInt8](repeating: 0, count: h * w * 3)
        for c in 0..<3 { for p in 0..<(h * w) { px[p * 3 + c] = byte(t[(i * 3 + c) * h * w + p]) } }
        return px
    }

    /// Generates the label files of `labelsDir` whose index is this rank's (i % size == rank),
    /// of the first `howMany` in sorted order (NVlabs test.py's how_many) or of all when nil.
    public static func run(checkpoint: String, labelsDir: String, instancesDir: String?, outDir: String,
                           configPath: String?, overrides: [String], howMany: Int? = nil, comm: Communicator) throws -> Int {
        let (config, generator) = try loadGenerator(checkpoint: checkpoint, configPath: configPath, overrides: overrides)
        let names = try labelFiles(labelsDir).prefix(howMany ?? Int.max)
        let mine = names.enumerated().filter { $0.offset % comm.size == comm.rank }.map(\.element)
        let inputs = mine.map { name in ("\(labelsDir)/\(name)", instancesDir.map { "\($0)/\(name)" }) }
        // Every input is checked before the first image is written: a bad label map is an
        // error naming it, not a half-done output folder.
        for (label, inst) in inputs { _ = try semantics(labelPath: label, instancePath: inst, config: config) }
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let h = config.imageHeight, w = config.imageWidth
        var written = 0
        for (name, (label, inst)) in zip(mine, inputs) {
            let stem = (name as NSString).deletingPathExtension
            let (sem, _) = try semantics(labelPath: label, instancePath: inst, config: config)
            let fake = generator.synthesize(sem, batch: 1, height: h, width: w)
            try writePNG(path: "\(outDir)/\(stem).png", width: w, height: h, channels: 3,
                         pixels: rgbBytes(fake, index: 0, height: h, width: w))
            written += 1
        }
        return written
    }

    /// `generate --phase`: NVlabs test.py over split `phase` of the config's dataset (its first
    /// `howMany` samples, or all): `<outDir>/images/{input_label,synthesized_image,real_image}/<name>.png`,
    /// named after each image file as test.py names them, and index.html (`ResultsPage`). Samples are
    /// preprocessed as test.py does (no flip; NVlabs' test-time defaults) and the images become bytes
    /// as its `tensor2im` and `tensor2label` make them. Rank r generates samples r, r + N, ...; rank 0
    /// checks the whole set first (one line per bad file, exit 2 on every rank) and writes the pages
    /// once every rank is done. Returns the number of samples this rank wrote.
    public static func runPhase(checkpoint: String, configPath: String?, overrides: [String], phase: String,
                                outDir: String, howMany: Int?, comm: Communicator) throws -> Int {
        let (config, generator) = try loadGenerator(checkpoint: checkpoint, configPath: configPath,
                                                    overrides: overrides + ["phase=\(phase)"], isTrain: false)
        guard config.dataset_mode != "synthetic" else {
            throw ConfigError(key: "dataset_mode", "generate --phase reads a dataset from disk (cityscapes, ade20k, custom or classified_tiles), got synthetic")
        }
        var options = config.datasetOptions
        options.noFlip = true
        if let howMany, options.maxDatasetSize == 0 || howMany < options.maxDatasetSize { options.maxDatasetSize = howMany }
        var problem = ""
        if comm.rank == 0 {
            problem = checkPhase(options, outDir: outDir)
        }
        if comm.size > 1 { problem = broadcastString(comm, problem) }
        if !problem.isEmpty { throw CollectiveUserError(description: problem) }

        let dataset = try Dataset(options: options)
        let h = config.imageHeight, w = config.imageWidth
        let mine = Array(stride(from: comm.rank, to: dataset.count, by: comm.size))
        let progress = ProgressDisplay(totalSteps: mine.count, startStep: 0, imagesPerStep: 1, rank: comm.rank)
        for (k, i) in mine.enumerated() {
            let batch = try dataset.makeBatch(indices: [i], epoch: 0)
            let fake = generator.synthesize(batch.semantics, batch: 1, height: h, width: w)
            let visuals = [nvlabsColorizedLabels(batch.labels, labelNC: config.label_nc),
                           nvlabsImageBytes(fake, index: 0, height: h, width: w),
                           nvlabsImageBytes(batch.image, index: 0, height: h, width: w)]
            for (visual, pixels) in zip(ResultsPage.visuals, visuals) {
                try writePNG(path: outDir + "/" + ResultsPage.imagePath(visual: visual, name: dataset.name(i)),
                             width: w, height: h, channels: 3, pixels: pixels)
            }
            progress.update(done: k + 1, unit: "image")
        }
        progress.finish()
        comm.barrier()
        if comm.rank == 0 {
            let title = "Experiment = \(config.name), Phase = \(phase), Checkpoint = \((checkpoint as NSString).lastPathComponent)"
            for page in ResultsPage.pages(title: title, names: (0..<dataset.count).map(dataset.name), width: w) {
                try AtomicFile.write(page.html, to: outDir + "/" + page.file)
            }
        }
        return mine.count
    }

    /// Rank 0's check before `runPhase` writes anything: the pre-scan of the split, results that
    /// would overwrite each other (two images with the same file name), and the output folders.
    /// Returns the problem lines ("" = none).
    static func checkPhase(_ options: DatasetOptions, outDir: String) -> String {
        var issues = prescan(options, threads: ProcessInfo.processInfo.activeProcessorCount)
        if issues.isEmpty, let dataset = try? Dataset(options: options) {
            var first: [String: String] = [:]
            for (i, f) in dataset.files.enumerated() {
                if let other = first[dataset.name(i)] {
                    issues.append(DataIssue(path: f.image, problem: "has the same file name as \(other): their results would overwrite each other"))
                }
                first[dataset.name(i)] = f.image
            }
        }
        if issues.isEmpty {
            do {
                for visual in ResultsPage.visuals {
                    try FileManager.default.createDirectory(atPath: outDir + "/images/" + visual, withIntermediateDirectories: true)
                }
            } catch {
                issues.append(DataIssue(path: outDir, problem: "cannot create the output folders: \(error.localizedDescription)"))
            }
        }
        return formatIssues(issues)
    }

    /// Mean re-segmentation pixel accuracy of the eval-mode generator on `count` synthetic
    /// scenes the training set did not contain (seed offset), for `spade-dist eval`.
    public static func syntheticAccuracy(generator: SPADEGenerator, config: TrainConfig, count: Int) -> Double {
        let h = config.imageHeight, w = config.imageWidth
        let scenes = SyntheticScenes(seed: UInt64(truncatingIfNeeded: config.seed) &+ 0x5eed, classes: config.label_nc,
                                     width: w, height: h)
        var total = 0.0
        for i in 0..<count {
            let raw = scenes.generate(index: i)
            guard let sem = try? makeSemantics(rawLabels: raw.labels, instances: config.no_instance ? nil : raw.instances,
                                               batch: 1, height: h, width: w, labelNC: config.label_nc,
                                               containDontcare: config.contain_dontcare_label) else { continue }
            let fake = generator.synthesize(sem, batch: 1, height: h, width: w)
            total += resegmentationAccuracy(image: fake, labels: raw.labels, height: h, width: w, classes: config.label_nc)
        }
        return total / Double(max(count, 1))
    }
}

/// `spade-dist inspect`: what a checkpoint holds.
public enum Inspection {
    public static func describe(path: String, listTensors: Bool) throws -> String {
        let file = try Checkpoint.read(path: path)
        var out = "\(path)\n"
        let m = file.metadata
        func row(_ key: String, _ value: String) -> String {
            "  \(key):" + String(repeating: " ", count: max(1, 15 - key.count)) + value + "\n"
        }
        out += row("format", m["format"] ?? "(none: not a spade-dist checkpoint)")
        for key in ["step", "epoch", "data_position", "world_size", "seed", "skipped_steps"] where m[key] != nil {
            out += row(key, m[key]!)
        }
        var groups: [String: (count: Int, elements: Int)] = [:]
        var bytes = 0
        for name in file.names {
            let t = file[name]!
            let g = String(name.split(separator: ".").first ?? "")
            groups[g, default: (0, 0)].count += 1
            groups[g, default: (0, 0)].elements += t.count
            bytes += t.bytes.count
        }
        out += "  tensors:        \(file.tensors.count) (\(String(format: "%.1f", Double(bytes) / 1_048_576)) MiB)\n"
        for g in groups.keys.sorted() {
            out += "    \(g): \(groups[g]!.count) tensors, \(groups[g]!.elements) values\n"
        }
        if listTensors {
            for name in file.names {
                let t = file[name]!
                out += "    \(name) \(t.dtype.rawValue) \(t.shape)\n"
            }
        }
        if let config = m["config"] {
            out += "  config:\n" + config.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { "    \($0)" }.joined(separator: "\n") + "\n"
        }
        return out
    }
}
