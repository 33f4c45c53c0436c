import Foundation

/// The data-related config keys (DESIGN.md §4), named after NVlabs options.
public struct DatasetOptions: Sendable, Equatable {
    /// `custom` (NVlabs folders), `cityscapes` and `ade20k` (the official trees under dataroot),
    /// `classified_tiles` (ArcGIS export) or `synthetic`.
    public var datasetMode: String = "synthetic"
    public var dataroot: String = ""
    /// `train` or `test`: cityscapes and ade20k read their `val` split for test, custom's
    /// dataroot layout `val_label`, `val_img`, `val_inst` (NVlabs' coco layout).
    public var phase: String = "train"
    /// Pair labels and images by sorted position without comparing their names (NVlabs' option).
    public var noPairingCheck: Bool = false
    /// ade20k: feed `label - 1` with 0 ("other") as don't-care, as NVlabs' ADE20KDataset.postprocess
    /// means to; its code never stores the result, so by default the raw ids 0...150 are fed.
    public var ade20kShiftLabels: Bool = false
    /// custom: defaults to `dataroot/train_label` (`val_label` for phase test); classified_tiles: `dataroot/labels`.
    public var labelDir: String = ""
    /// custom: defaults to `dataroot/train_img` (`val_img` for phase test); classified_tiles: `dataroot/images`.
    public var imageDir: String = ""
    /// custom only; required unless `noInstance`. Empty/nil = none (then
    /// `dataroot/train_inst` is used if `noInstance` is false and it exists).
    public var instanceDir: String? = nil
    public var labelNC: Int = 8
    public var containDontcareLabel: Bool = false
    public var noInstance: Bool = true
    /// `index`: a single-channel (gray or palette) PNG whose value / palette
    /// index is the class id. `rgb`: an RGB label image mapped to class ids
    /// through `labelColors` (or, for classified_tiles, the `Color` of each
    /// class in esri_model_definition.emd).
    public var labelEncoding: String = "index"
    /// Class colours for `label_encoding: rgb` (`labelColors[c] = [r, g, b]`); with
    /// `containDontcareLabel`, entry `labelNC` is the don't-care colour (value 255).
    public var labelColors: [[Int]] = []
    public var preprocessMode: String = "resize_and_crop"
    public var loadSize: Int = 286
    public var cropSize: Int = 256
    public var aspectRatio: Double = 1.0
    public var noFlip: Bool = false
    public var serialBatches: Bool = false
    /// Only the first N samples (in sorted order; synthetic: scenes 0..<N); 0 = all.
    public var maxDatasetSize: Int = 0
    public var seed: UInt64 = 0
    /// synthetic: number of generated scenes.
    public var syntheticCount: Int = 256
    /// synthetic: generated width (0 = crop_size); height = round(width / aspect_ratio).
    public var syntheticSize: Int = 0
    /// synthetic: number of classes drawn (3...8, the first of SyntheticScenes.classNames).
    public var syntheticClasses: Int = 8

    public init() {}

    public static let datasetModes = ["custom", "cityscapes", "ade20k", "classified_tiles", "synthetic"]
    public static let phases = ["train", "test"]
    public static let labelEncodings = ["index", "rgb"]
    public static let preprocessModes = ["resize_and_crop", "crop", "scale_width", "scale_width_and_crop",
                                         "scale_shortside", "scale_shortside_and_crop", "fixed", "none"]

    /// Channels of the generator input: label_nc (+1 don't-care) (+1 instance edges).
    public var semanticNC: Int { labelNC + (containDontcareLabel ? 1 : 0) + (noInstance ? 0 : 1) }

    /// Batch image width: crop_size.
    public var outputWidth: Int { cropSize }
    /// Batch image height: round(crop_size / aspect_ratio), Python's round (half to even).
    public var outputHeight: Int { Int((Double(cropSize) / aspectRatio).rounded(.toNearestOrEven)) }

    /// Label values of one-hot channels (255 -> label_nc when don't-care).
    var oneHotChannels: Int { labelNC + (containDontcareLabel ? 1 : 0) }

    /// The split a phase reads, in every layout with splits: `train`, or `val` for phase test
    /// (NVlabs: `'val' if phase == 'test' else phase`): custom's `val_label`, Cityscapes'
    /// `gtFine/val`, ADE20K's `_val_` files.
    var splitFolder: String { phase == "test" ? "val" : "train" }

    /// Effective directories after defaults (custom and classified_tiles).
    public var resolvedLabelDir: String {
        if !labelDir.isEmpty { return labelDir }
        return joinPath(dataroot, datasetMode == "classified_tiles" ? "labels" : "\(splitFolder)_label")
    }
    public var resolvedImageDir: String {
        if !imageDir.isEmpty { return imageDir }
        return joinPath(dataroot, datasetMode == "classified_tiles" ? "images" : "\(splitFolder)_img")
    }
    public var resolvedInstanceDir: String? {
        if noInstance { return nil }
        if let d = instanceDir, !d.isEmpty { return d }
        return datasetMode == "custom" ? joinPath(dataroot, "\(splitFolder)_inst") : nil
    }

    /// Label values as read from a file -> the stored convention of every mode (class ids
    /// 0..<label_nc, 255 = don't-care). Only ADE20K differs: its annotations store 0 = "other"
    /// and 1...150 = classes. NVlabs feeds them unshifted (ADE20KDataset.postprocess computes
    /// `label - 1` into a local variable and drops it), so id 150 lands in the don't-care
    /// channel label_nc; `ade20k_shift_labels` applies the shift it intended (0 -> don't-care,
    /// v -> v - 1). Values outside 0...label_nc are left for `labelProblem` to report.
    public func storedLabelValues(_ values: [Int32]) -> [Int32] {
        guard datasetMode == "ade20k", containDontcareLabel else { return values }
        let nc = Int32(labelNC)
        if ade20kShiftLabels { return values.map { $0 == 0 ? 255 : ($0 <= nc ? $0 - 1 : $0) } }
        return values.map { $0 == nc ? 255 : $0 }
    }

    /// Checks values and combinations; errors name the key (exit 2).
    public func validate() throws {
        var issues: [DataIssue] = []
        func bad(_ key: String, _ msg: String) { issues.append(DataIssue(path: key, problem: msg)) }
        if !Self.datasetModes.contains(datasetMode) {
            bad("dataset_mode", "unknown value '\(datasetMode)' (expected one of \(Self.datasetModes.joined(separator: ", ")))")
        }
        if !Self.preprocessModes.contains(preprocessMode) {
            bad("preprocess_mode", "unknown value '\(preprocessMode)' (expected one of \(Self.preprocessModes.joined(separator: ", ")))")
        }
        if !Self.phases.contains(phase) { bad("phase", "unknown value '\(phase)' (expected train or test)") }
        if !Self.labelEncodings.contains(labelEncoding) {
            bad("label_encoding", "unknown value '\(labelEncoding)' (expected index or rgb)")
        }
        if labelNC < 1 || labelNC > 255 { bad("label_nc", "must be in 1...255, got \(labelNC)") }
        if cropSize < 1 { bad("crop_size", "must be positive, got \(cropSize)") }
        if loadSize < 1 { bad("load_size", "must be positive, got \(loadSize)") }
        if !(aspectRatio > 0) || !aspectRatio.isFinite { bad("aspect_ratio", "must be positive, got \(aspectRatio)") }
        else if outputHeight < 1 { bad("aspect_ratio", "crop_size / aspect_ratio rounds to 0") }
        if preprocessMode.contains("crop") && loadSize < cropSize && preprocessMode != "crop" {
            bad("load_size", "load_size \(loadSize) < crop_size \(cropSize) with preprocess_mode \(preprocessMode)")
        }
        switch datasetMode {
        case "custom":
            if dataroot.isEmpty && (labelDir.isEmpty || imageDir.isEmpty) {
                bad("dataroot", "dataset_mode custom needs dataroot (or label_dir and image_dir)")
            }
        case "classified_tiles":
            if dataroot.isEmpty && (labelDir.isEmpty || imageDir.isEmpty) {
                bad("dataroot", "dataset_mode classified_tiles needs dataroot (the export folder)")
            }
            if !noInstance { bad("no_instance", "classified_tiles has no instance maps: set no_instance: true") }
        case "cityscapes", "ade20k":
            if dataroot.isEmpty { bad("dataroot", "dataset_mode \(datasetMode) needs dataroot (the folder of the official download)") }
            for (key, value) in [("label_dir", labelDir), ("image_dir", imageDir), ("instance_dir", instanceDir ?? "")] where !value.isEmpty {
                bad(key, "is not used by dataset_mode \(datasetMode), which reads the official tree under dataroot")
            }
            if datasetMode == "ade20k" && !noInstance { bad("no_instance", "ADE20K has no instance maps: set no_instance: true") }
            if labelEncoding != "index" { bad("label_encoding", "dataset_mode \(datasetMode) labels are class ids: use label_encoding: index") }
        case "synthetic":
            if syntheticClasses < 3 || syntheticClasses > SyntheticScenes.classNames.count {
                bad("synthetic_classes", "must be in 3...\(SyntheticScenes.classNames.count), got \(syntheticClasses)")
            } else if labelNC < syntheticClasses {
                bad("label_nc", "label_nc \(labelNC) < synthetic_classes \(syntheticClasses)")
            }
            if syntheticCount < 1 { bad("synthetic_count", "must be positive, got \(syntheticCount)") }
            if syntheticSize < 0 { bad("synthetic_size", "must be >= 0, got \(syntheticSize)") }
        default: break
        }
        if labelEncoding == "rgb" {
            if datasetMode == "synthetic" { bad("label_encoding", "synthetic labels are class indices: use label_encoding: index") }
            if datasetMode == "custom" && labelColors.isEmpty {
                bad("label_colors", "label_encoding rgb needs label_colors (one [r, g, b] per class)")
            }
        }
        if let problem = labelColorsProblem(labelColors) { bad("label_colors", problem) }
        if labelColors.count > oneHotChannels {
            bad("label_colors", "\(labelColors.count) colours for label_nc \(labelNC)\(containDontcareLabel ? " + 1 don't-care" : "")")
        }
        if ade20kShiftLabels && datasetMode != "ade20k" { bad("ade20k_shift_labels", "applies to dataset_mode ade20k only") }
        if ade20kShiftLabels && !containDontcareLabel {
            bad("ade20k_shift_labels", "makes ADE20K's 0 (\"other\") don't-care: needs contain_dontcare_label: true")
        }
        if maxDatasetSize < 0 { bad("max_dataset_size", "must be >= 0, got \(maxDatasetSize)") }
        if !issues.isEmpty { throw DataError(issues) }
    }
}

/// What is wrong with a `label_colors` list, if anything: an entry that is not three values
/// 0...255, or a colour given twice (a pixel of it could not name one class).
public func labelColorsProblem(_ colors: [[Int]]) -> String? {
    var firstEntry: [[Int]: Int] = [:]
    for (i, c) in colors.enumerated() {
        let text = "[" + c.map(String.init).joined(separator: ", ") + "]"
        if c.count != 3 { return "entry \(i) \(text) must have three values [r, g, b]" }
        if let v = c.first(where: { !(0...255).contains($0) }) {
            return "entry \(i) \(text): \(v) is out of range (must be 0 ... 255)"
        }
        if let j = firstEntry[c] { return "entry \(i) \(text) repeats the colour of entry \(j)" }
        firstEntry[c] = i
    }
    return nil
}

func joinPath(_ a: String, _ b: String) -> String {
    if a.isEmpty { return b }
    return a.hasSuffix("/") ? a + b : a + "/" + b
}
