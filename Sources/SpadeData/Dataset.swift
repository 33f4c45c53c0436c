import Foundation

/// One decoded sample: raw label values (255 = don't-care), RGB pixels and
/// optional instance ids, all W x H.
public struct RawSample: Sendable {
    public var name: String
    public var width: Int
    public var height: Int
    /// (H, W) stored class values (not yet mapped: 255 stays 255).
    public var labels: [Int32]
    /// (H, W, 3) RGB.
    public var image: [UInt8]
    /// (H, W) instance ids (only equality matters), if used.
    public var instances: [Int32]?
    /// How Pillow, and so NVlabs, would pick nearest neighbours when resizing each map
    /// (it depends on the file's bit depth).
    public var labelSampling: NearestSampling
    public var instanceSampling: NearestSampling

    public init(name: String, width: Int, height: Int, labels: [Int32], image: [UInt8], instances: [Int32]?,
                labelSampling: NearestSampling = .accumulated, instanceSampling: NearestSampling = .accumulated) {
        self.name = name
        self.width = width
        self.height = height
        self.labels = labels
        self.image = image
        self.instances = instances
        self.labelSampling = labelSampling
        self.instanceSampling = instanceSampling
    }
}

/// The files of one sample.
public struct SampleFiles: Sendable, Equatable {
    public var name: String
    public var label: String
    public var image: String
    public var instance: String?
}

/// A class of an ArcGIS export (esri_model_definition.emd `Classes`).
public struct EsriClass: Sendable, Equatable {
    public var value: Int
    public var name: String
    public var color: [Int]?
}

/// A batch of this rank, ready for the generator and discriminator.
public struct Batch: Sendable {
    /// (B, semanticNC, H, W): one-hot over label_nc (+ don't-care) (+ instance edges).
    public var semantics: [Float]
    /// (B, 3, H, W): `(Float(x)/255 - 0.5)/0.5`.
    public var image: [Float]
    /// (B, H, W): class index (255 -> label_nc with contain_dontcare_label).
    public var labels: [Int32]
    /// Sample names (the image files' stems).
    public var names: [String]
    /// Dataset indices of the samples.
    public var indices: [Int]
    public var batchSize: Int
    public var semanticNC: Int
    public var height: Int
    public var width: Int
    /// The epoch the batch belongs to.
    public var epoch: Int
}

/// A dataset: the list of samples of one of the three modes, and how to load
/// and preprocess one of them. Immutable, safe to share across threads.
public final class Dataset: Sendable {
    public let options: DatasetOptions
    /// Files of each sample (empty for synthetic).
    public let files: [SampleFiles]
    public let count: Int
    /// classified_tiles: the classes of esri_model_definition.emd, if present.
    public let esriClasses: [EsriClass]
    let scenes: SyntheticScenes?
    /// The class colours of `label_encoding: rgb` (nil for index).
    let colorTable: LabelColorTable?

    /// Lists the dataset; throws a DataError listing every listing problem
    /// (missing directory, empty directory, missing partner, bad metadata).
    /// File contents are checked by `prescan`.
    public convenience init(options: DatasetOptions) throws {
        try options.validate()
        let listing = listDataset(options)
        if !listing.issues.isEmpty { throw DataError(mergeIssuesPerFile(listing.issues)) }
        self.init(options: options, listing: listing)
    }

    init(options: DatasetOptions, listing: DatasetListing) {
        self.options = options
        // NVlabs (pix2pix_dataset.py) keeps paths[:max_dataset_size] after sorting.
        let limit = options.maxDatasetSize > 0 ? options.maxDatasetSize : Int.max
        self.files = Array(listing.files.prefix(limit))
        self.esriClasses = listing.esriClasses
        if options.datasetMode == "synthetic" {
            let w = options.syntheticSize > 0 ? options.syntheticSize : options.cropSize
            let h = Int((Double(w) / options.aspectRatio).rounded(.toNearestOrEven))
            scenes = SyntheticScenes(seed: options.seed, classes: options.syntheticClasses, width: w, height: max(h, 1))
            count = min(options.syntheticCount, limit)
        } else {
            scenes = nil
            count = files.count
        }
        if options.labelEncoding != "rgb" {
            colorTable = nil
        } else if !options.labelColors.isEmpty {
            colorTable = LabelColorTable(labelColors: options.labelColors, labelNC: options.labelNC)
        } else {
            colorTable = LabelColorTable(esriClasses: listing.esriClasses)
        }
    }

    /// Sample name (the image file's stem, as NVlabs' test.py names its results, or `synth_<index>`).
    public func name(_ i: Int) -> String {
        scenes != nil ? String(format: "synth_%05d", i) : files[i].name
    }

    /// The label file of sample i (for messages), or its synthetic name.
    public func labelPath(_ i: Int) -> String { scenes != nil ? name(i) : files[i].label }

    /// Decodes sample i without preprocessing. Errors name the file.
    public func loadRaw(_ i: Int) throws -> RawSample {
        if let scenes {
            var s = scenes.generate(index: i)
            s.name = name(i)
            if options.noInstance { s.instances = nil }
            return s
        }
        let f = files[i]
        let labelImg = try readImage(path: f.label)
        let labels = try labelValues(labelImg, path: f.label)
        let img = try readImage(path: f.image)
        if img.width != labelImg.width || img.height != labelImg.height {
            throw DataError(path: f.image, "size \(img.width)x\(img.height) differs from its label \(f.label) (\(labelImg.width)x\(labelImg.height))")
        }
        var instances: [Int32]? = nil
        var instanceSampling = NearestSampling.accumulated
        if let ip = f.instance, !options.noInstance {
            let inst = try readImage(path: ip)
            if inst.width != labelImg.width || inst.height != labelImg.height {
                throw DataError(path: ip, "size \(inst.width)x\(inst.height) differs from its label \(f.label) (\(labelImg.width)x\(labelImg.height))")
            }
            instances = inst.indexValues() ?? inst.packedRGB()
            instanceSampling = NearestSampling(inst)
        }
        return RawSample(name: f.name, width: labelImg.width, height: labelImg.height,
                         labels: labels, image: img.rgb8(), instances: instances,
                         labelSampling: NearestSampling(labelImg), instanceSampling: instanceSampling)
    }

    /// Stored class values of a decoded label image under `label_encoding` (and the mode's
    /// convention, `DatasetOptions.storedLabelValues`).
    func labelValues(_ img: DecodedImage, path: String) throws -> [Int32] {
        if let colorTable { return try colorTable.classValues(img, path: path) }
        guard let v = img.indexValues() else {
            throw DataError(path: path, "label map has \(img.channels) channels; label_encoding index needs a single-channel gray or palette PNG (or set label_encoding: rgb)")
        }
        return options.storedLabelValues(v)
    }

    /// Sample i after preprocessing for `epoch` (random crop/flip from
    /// (seed, epoch, i)); labels still raw values.
    public func loadSample(_ i: Int, epoch: Int) throws -> RawSample {
        let raw = try loadRaw(i)
        var rng = augmentationRNG(seed: options.seed, epoch: epoch, sampleIndex: i)
        let plan: GeometryPlan
        do {
            plan = try planGeometry(width: raw.width, height: raw.height, options: options, rng: &rng)
        } catch let e as GeometryProblem {
            throw DataError(path: scenes != nil ? name(i) : files[i].image, e.message)
        }
        return preprocess(raw, plan: plan)
    }

    /// A raw sample resized, cropped and flipped by `plan`.
    func preprocess(_ raw: RawSample, plan: GeometryPlan) -> RawSample {
        RawSample(name: raw.name, width: plan.outWidth, height: plan.outHeight,
                  labels: transformNearest(raw.labels, plan: plan, sampling: raw.labelSampling),
                  image: transformImage(raw.image, plan: plan),
                  instances: raw.instances.map { transformNearest($0, plan: plan, sampling: raw.instanceSampling) })
    }

    /// Loads, preprocesses and assembles the samples `indices` of `epoch`.
    public func makeBatch(indices: [Int], epoch: Int) throws -> Batch {
        try assemble(indices.map { try loadSample($0, epoch: epoch) }, indices: indices, epoch: epoch)
    }

    /// The batch of preprocessed samples (those of dataset `indices`).
    func assemble(_ samples: [RawSample], indices: [Int], epoch: Int) throws -> Batch {
        let o = options
        let h = o.outputHeight, w = o.outputWidth, hw = h * w
        let c = o.semanticNC, b = indices.count
        var batch = Batch(semantics: [Float](repeating: 0, count: b * c * hw),
                          image: [Float](repeating: 0, count: b * 3 * hw),
                          labels: [Int32](repeating: 0, count: b * hw),
                          names: [], indices: indices, batchSize: b, semanticNC: c,
                          height: h, width: w, epoch: epoch)
        for (k, (i, s)) in zip(indices, samples).enumerated() {
            precondition(s.width == w && s.height == h, "preprocessing produced \(s.width)x\(s.height)")
            let idx = try labelToIndex(s.labels, labelNC: o.labelNC, containDontcare: o.containDontcareLabel,
                                       path: labelPath(i))
            batch.names.append(s.name)
            batch.labels.replaceSubrange((k * hw)..<((k + 1) * hw), with: idx)
            batch.semantics.withUnsafeMutableBufferPointer { p in
                writeSemantics(index: idx, instances: o.noInstance ? nil : s.instances, height: h, width: w,
                               oneHotChannels: o.oneHotChannels,
                               into: UnsafeMutableBufferPointer(rebasing: p[(k * c * hw)..<((k + 1) * c * hw)]))
            }
            batch.image.withUnsafeMutableBufferPointer { p in
                writeNormalizedImage(s.image, pixels: hw, into: UnsafeMutableBufferPointer(rebasing: p[(k * 3 * hw)..<((k + 1) * 3 * hw)]))
            }
        }
        return batch
    }
}

/// `label_encoding: rgb`: the stored class value of each class colour.
public struct LabelColorTable: Sendable {
    /// Packed 0xRRGGBB -> class value (255 = don't-care).
    let values: [Int32: Int32]
    /// Where the colours come from, for messages.
    let source: String

    /// `label_colors`: entry c is class c; with contain_dontcare_label the entry after the
    /// classes (c = labelNC) is the don't-care colour, stored as 255 like index labels.
    public init(labelColors: [[Int]], labelNC: Int) {
        var values: [Int32: Int32] = [:]
        for (c, rgb) in labelColors.enumerated() where rgb.count == 3 {
            values[Self.packed(rgb)] = c == labelNC ? 255 : Int32(c)
        }
        self.values = values
        source = "label_colors"
    }

    /// An ArcGIS export's classes: each `Color` is class `Value`.
    init(esriClasses: [EsriClass]) {
        var values: [Int32: Int32] = [:]
        for c in esriClasses {
            if let rgb = c.color, rgb.count >= 3 { values[Self.packed(rgb)] = Int32(c.value) }
        }
        self.values = values
        source = "esri_model_definition.emd"
    }

    /// 0xRRGGBB, as `DecodedImage.packedRGB` packs pixels.
    private static func packed(_ rgb: [Int]) -> Int32 { Int32(rgb[0] << 16 | rgb[1] << 8 | rgb[2]) }

    /// The class values of a decoded label image (RGB, or palette expanded); pixels of colours
    /// no class has are one DataError naming the file, the colours and their pixel counts.
    public func classValues(_ img: DecodedImage, path: String) throws -> [Int32] {
        let packed = img.packedRGB()
        var out = [Int32](repeating: 0, count: packed.count)
        var unknown: [Int32: Int] = [:]     // colour -> pixels
        for i in 0..<packed.count {
            if let c = values[packed[i]] { out[i] = c } else { unknown[packed[i], default: 0] += 1 }
        }
        if !unknown.isEmpty { throw DataError(path: path, unknownColorsProblem(unknown, source: source)) }
        return out
    }
}

/// One line for the colours of a label map that no class has, most frequent first:
/// `colour (1, 2, 3) in 80 pixels is not in label_colors`.
private func unknownColorsProblem(_ pixels: [Int32: Int], source: String) -> String {
    let shown = 3
    let sorted = pixels.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
    var parts = sorted.prefix(shown).map { v, n in
        "(\(v >> 16), \(v >> 8 & 255), \(v & 255)) in \(n) pixel\(n == 1 ? "" : "s")"
    }
    let more = sorted.count - shown
    if more > 0 { parts.append("\(more) more colour\(more == 1 ? "" : "s")") }
    let noun = sorted.count == 1 ? "colour" : "colours"
    return "\(noun) \(parts.joined(separator: ", ")) \(sorted.count == 1 ? "is" : "are") not in \(source)"
}

// MARK: - Listing

struct DatasetListing {
    var files: [SampleFiles] = []
    var issues: [DataIssue] = []
    var esriClasses: [EsriClass] = []
}

private let supportedExtensions: Set<String> = ["png", "jpg", "jpeg"]
private let unsupportedImageExtensions: Set<String> = ["tif", "tiff", "bmp", "gif", "webp", "ppm", "pgm", "mrf"]

/// Image files of a directory by name stem (non-recursive, hidden files skipped).
private func listImages(dir: String, key: String, issues: inout [DataIssue]) -> [String: String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) else {
        issues.append(DataIssue(path: dir, problem: "directory does not exist (\(key))"))
        return [:]
    }
    guard isDir.boolValue else {
        issues.append(DataIssue(path: dir, problem: "is not a directory (\(key))"))
        return [:]
    }
    let names: [String]
    do {
        names = try FileManager.default.contentsOfDirectory(atPath: dir)
    } catch {
        issues.append(DataIssue(path: dir, problem: "cannot list directory (\(key)): \(error.localizedDescription)"))
        return [:]
    }
    var byStem: [String: String] = [:]
    for name in names.sorted() where !name.hasPrefix(".") {
        let ext = (name as NSString).pathExtension.lowercased()
        let path = joinPath(dir, name)
        if supportedExtensions.contains(ext) {
            let stem = (name as NSString).deletingPathExtension
            if let other = byStem[stem] {
                issues.append(DataIssue(path: path, problem: "same name stem as \(other)"))
            } else {
                byStem[stem] = path
            }
        } else if unsupportedImageExtensions.contains(ext) {
            issues.append(DataIssue(path: path, problem: "unsupported image format .\(ext) (use PNG or JPEG)"))
        }
    }
    if byStem.isEmpty && !issues.contains(where: { $0.path.hasPrefix(dir) }) {
        issues.append(DataIssue(path: dir, problem: "no PNG or JPEG files (\(key))"))
    }
    return byStem
}

/// Pairs label, image (and instance) files by name stem.
private func pairByStem(labels: [String: String], images: [String: String], instances: [String: String]?,
                        labelDir: String, imageDir: String, instanceDir: String?, issues: inout [DataIssue]) -> [SampleFiles] {
    var files: [SampleFiles] = []
    for stem in labels.keys.sorted() {
        let lp = labels[stem]!
        guard let ip = images[stem] else {
            if !images.isEmpty { issues.append(DataIssue(path: lp, problem: "no image with the same name in \(imageDir)")) }
            continue
        }
        var inst: String? = nil
        if let instances, let instanceDir {
            guard let p = instances[stem] else {
                if !instances.isEmpty { issues.append(DataIssue(path: lp, problem: "no instance map with the same name in \(instanceDir)")) }
                continue
            }
            inst = p
        }
        files.append(SampleFiles(name: stem, label: lp, image: ip, instance: inst))
    }
    if !labels.isEmpty {
        for stem in images.keys.sorted() where labels[stem] == nil {
            issues.append(DataIssue(path: images[stem]!, problem: "no label with the same name in \(labelDir)"))
        }
    }
    return files
}

func listDataset(_ o: DatasetOptions) -> DatasetListing {
    var listing = DatasetListing()
    switch o.datasetMode {
    case "synthetic":
        return listing
    case "cityscapes":
        listCityscapes(o, into: &listing)
    case "ade20k":
        listADE20K(o, into: &listing)
    case "classified_tiles":
        listClassifiedTiles(o, into: &listing)
    default:
        let labelDir = o.resolvedLabelDir, imageDir = o.resolvedImageDir
        let labels = listImages(dir: labelDir, key: "label_dir", issues: &listing.issues)
        let images = listImages(dir: imageDir, key: "image_dir", issues: &listing.issues)
        var instances: [String: String]? = nil
        let instanceDir = o.resolvedInstanceDir
        if let d = instanceDir { instances = listImages(dir: d, key: "instance_dir", issues: &listing.issues) }
        listing.files = pairByStem(labels: labels, images: images, instances: instances,
                                   labelDir: labelDir, imageDir: imageDir, instanceDir: instanceDir,
                                   issues: &listing.issues)
    }
    return listing
}

// MARK: - ArcGIS Classified Tiles

/// ArcGIS Pro "Export Training Data for Deep Learning", metadata format
/// Classified_Tiles: `images/` and `labels/` tiles, `map.txt` (image label
/// pairs, one per line), `esri_model_definition.emd` (JSON, `Classes` with
/// `Value`, `Name`, `Color`), `esri_accumulated_stats.json` and `stats.txt`.
private func listClassifiedTiles(_ o: DatasetOptions, into listing: inout DatasetListing) {
    let root = o.dataroot
    var isDir: ObjCBool = false
    if !root.isEmpty && !(FileManager.default.fileExists(atPath: root, isDirectory: &isDir) && isDir.boolValue) {
        listing.issues.append(DataIssue(path: root, problem: "directory does not exist (dataroot)"))
        return
    }
    // Metadata: classes and the export's format.
    for meta in ["esri_model_definition.emd", "esri_accumulated_stats.json"] {
        let path = joinPath(root, meta)
        guard FileManager.default.fileExists(atPath: path) else { continue }
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            listing.issues.append(DataIssue(path: path, problem: "not a valid JSON document"))
            continue
        }
        if let mode = obj["MetaDataMode"] as? String, mode != "Classified_Tiles" {
            listing.issues.append(DataIssue(path: path, problem: "MetaDataMode is '\(mode)'; dataset_mode classified_tiles reads Classified_Tiles exports"))
        }
        if listing.esriClasses.isEmpty, let classes = obj["Classes"] as? [[String: Any]] {
            for c in classes {
                guard let v = (c["Value"] ?? c["ClassValue"]) as? NSNumber else { continue }
                let name = (c["Name"] ?? c["ClassName"]) as? String ?? "class \(v)"
                let color = ((c["Color"] ?? c["ClassColor"]) as? [NSNumber])?.map(\.intValue)
                listing.esriClasses.append(EsriClass(value: v.intValue, name: name, color: color))
            }
            for c in listing.esriClasses where c.value >= o.labelNC && c.value != 255 {
                listing.issues.append(DataIssue(path: path, problem: "class '\(c.name)' has value \(c.value) >= label_nc \(o.labelNC)"))
            }
        }
    }
    if o.labelEncoding == "rgb" && o.labelColors.isEmpty && !listing.esriClasses.contains(where: { $0.color != nil }) {
        listing.issues.append(DataIssue(path: joinPath(root, "esri_model_definition.emd"),
                                        problem: "label_encoding rgb needs class colours (Classes[].Color here, or label_colors)"))
    }
    let labelDir = o.resolvedLabelDir, imageDir = o.resolvedImageDir
    let mapPath = joinPath(root, "map.txt")
    if o.labelDir.isEmpty && o.imageDir.isEmpty, FileManager.default.fileExists(atPath: mapPath) {
        guard let data = FileManager.default.contents(atPath: mapPath) else {
            listing.issues.append(DataIssue(path: mapPath, problem: "cannot read"))
            return
        }
        let text = String(decoding: data, as: UTF8.self)
        var seen = Set<String>()
        for (n, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.isEmpty { continue }
            guard parts.count >= 2 else {
                listing.issues.append(DataIssue(path: mapPath, problem: "line \(n + 1): expected '<image> <label>'"))
                continue
            }
            // Paths are written relative (images\x.png) or absolute (C:\...\images\x.png):
            // keep the folder and file name, resolve against dataroot.
            func resolve(_ s: Substring) -> String {
                let comps = s.replacingOccurrences(of: "\\", with: "/").split(separator: "/").map(String.init)
                return comps.suffix(2).reduce(root) { joinPath($0, $1) }
            }
            let ip = resolve(parts[0]), lp = resolve(parts[1])
            let stem = ((ip as NSString).lastPathComponent as NSString).deletingPathExtension
            for p in [ip, lp] where !FileManager.default.fileExists(atPath: p) {
                listing.issues.append(DataIssue(path: p, problem: "listed in \(mapPath) (line \(n + 1)) but missing"))
            }
            let ext = (ip as NSString).pathExtension.lowercased()
            if unsupportedImageExtensions.contains(ext) {
                listing.issues.append(DataIssue(path: ip, problem: "unsupported image format .\(ext) (export the tiles as PNG or JPEG)"))
                continue
            }
            if seen.insert(stem).inserted {
                listing.files.append(SampleFiles(name: stem, label: lp, image: ip, instance: nil))
            }
        }
        if listing.files.isEmpty && listing.issues.isEmpty {
            listing.issues.append(DataIssue(path: mapPath, problem: "lists no tiles"))
        }
        listing.files.sort { $0.name < $1.name }
        return
    }
    let labels = listImages(dir: labelDir, key: "labels folder", issues: &listing.issues)
    let images = listImages(dir: imageDir, key: "images folder", issues: &listing.issues)
    listing.files = pairByStem(labels: labels, images: images, instances: nil, labelDir: labelDir,
                               imageDir: imageDir, instanceDir: nil, issues: &listing.issues)
}
