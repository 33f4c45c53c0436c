import SafeTensors
import SpadeNN
// The one table of config keys. Parsing, `--set`, validation of single values,
// YAML dumping, defaults and the README key table are all derived from it.

/// A config value as stored in the table (defaults) and read generically.
public enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case int(Int)
    case float(Double)
    case bool(Bool)
    case string(String)
    /// `label_colors`: one `[r, g, b]` per class id.
    case colors([[Int]])

    /// The value as written in YAML (strings quoted when YAML would misread them).
    public var description: String {
        switch self {
        case .int(let v): return String(v)
        case .float(let v): return yamlFloat(v)
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return yamlString(v)
        case .colors(let v): return "[" + v.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
        }
    }
}

/// Numeric range a key's value must lie in.
public struct ConfigBounds: Sendable, Equatable {
    public var min: Double?
    public var minExclusive = false
    public var max: Double?
    public var maxExclusive = false

    /// `v >= lo` (or `> lo` when exclusive).
    public static func atLeast(_ lo: Double, exclusive: Bool = false) -> ConfigBounds {
        ConfigBounds(min: lo, minExclusive: exclusive)
    }

    /// `lo <= v <= hi` with optional open ends.
    public static func between(_ lo: Double, _ hi: Double, minExclusive: Bool = false, maxExclusive: Bool = false) -> ConfigBounds {
        ConfigBounds(min: lo, minExclusive: minExclusive, max: hi, maxExclusive: maxExclusive)
    }

    public func contains(_ v: Double) -> Bool {
        if let lo = min, minExclusive ? !(v > lo) : !(v >= lo) { return false }
        if let hi = max, maxExclusive ? !(v < hi) : !(v <= hi) { return false }
        return true
    }

    /// Human form: `>= 1`, `> 0`, `0 ... 255`, `[0, 1)`.
    public var text: String {
        func n(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }
        switch (min, max) {
        case let (lo?, nil): return (minExclusive ? "> " : ">= ") + n(lo)
        case let (nil, hi?): return (maxExclusive ? "< " : "<= ") + n(hi)
        case let (lo?, hi?):
            if !minExclusive && !maxExclusive { return "\(n(lo)) ... \(n(hi))" }
            return (minExclusive ? "(" : "[") + "\(n(lo)), \(n(hi))" + (maxExclusive ? ")" : "]")
        case (nil, nil): return "any"
        }
    }
}

/// One config key: its name, type, default, allowed values and a one-line description.
public struct ConfigKeySpec: Sendable {
    /// The value type of a key.
    public enum Kind: Sendable, Equatable {
        case int, float, bool, string
        /// A string restricted to the listed values.
        case choice([String])
        /// A YAML list of `[r, g, b]` lists (`label_colors`).
        case colors

        public var name: String {
            switch self {
            case .int: return "int"
            case .float: return "float"
            case .bool: return "bool"
            case .string: return "string"
            case .choice: return "choice"
            case .colors: return "list of [r, g, b]"
            }
        }
    }

    /// Where the value lives in `TrainConfig`.
    enum Field: Sendable {
        case int(WritableKeyPath<TrainConfig, Int> & Sendable)
        case float(WritableKeyPath<TrainConfig, Double> & Sendable)
        case bool(WritableKeyPath<TrainConfig, Bool> & Sendable)
        case string(WritableKeyPath<TrainConfig, String> & Sendable)
        case colors(WritableKeyPath<TrainConfig, [[Int]]> & Sendable)
    }

    public let name: String
    public let kind: Kind
    public let defaultValue: ConfigValue
    public let bounds: ConfigBounds?
    /// NVlabs SPADE's default for this option as declared (base_options.py, train_options.py or
    /// the network's options); nil when NVlabs has no such option.
    public let nvlabsDefault: String?
    /// Defaults NVlabs sets over `nvlabsDefault`: a dataset_mode's (its modify_commandline_options)
    /// or one that depends on another option.
    public private(set) var nvlabsOverrides: [NVlabsOverride] = []
    public let description: String
    /// Other accepted spellings (e.g. NVlabs's `D_steps_per_G`).
    public let aliases: [String]
    /// For choice keys: why values NVlabs knows but we do not implement are rejected.
    public let rejectNote: String?
    let field: Field

    /// "Allowed" column text: range, choices or "-".
    public var allowedText: String {
        if case .choice(let c) = kind { return c.joined(separator: ", ") }
        if kind == .bool { return "true, false" }
        if kind == .colors { return "[r, g, b] per class id, each 0 ... 255, no colour twice" }
        return bounds?.text ?? "-"
    }

    /// "NVlabs default" column text: the declared default, marked "(base)" when NVlabs overrides
    /// it, then each override (`512 (base); 256 with dataset_mode custom, coco, ade20k`).
    public var nvlabsText: String {
        guard let base = nvlabsDefault else { return "-" }
        if nvlabsOverrides.isEmpty { return base }
        return ([base + " (base)"] + nvlabsOverrides.map { "\($0.value) with \($0.condition)" }).joined(separator: "; ")
    }

    /// This key with NVlabs' overrides of its base default.
    func nvlabs(overrides: NVlabsOverride...) -> ConfigKeySpec {
        var spec = self
        spec.nvlabsOverrides = overrides
        return spec
    }

    static func int(_ name: String, _ kp: WritableKeyPath<TrainConfig, Int> & Sendable, _ def: Int,
                    _ bounds: ConfigBounds? = nil, nvlabs: String? = nil, aliases: [String] = [],
                    _ description: String) -> ConfigKeySpec {
        ConfigKeySpec(name: name, kind: .int, defaultValue: .int(def), bounds: bounds, nvlabsDefault: nvlabs,
                      description: description, aliases: aliases, rejectNote: nil, field: .int(kp))
    }

    static func float(_ name: String, _ kp: WritableKeyPath<TrainConfig, Double> & Sendable, _ def: Double,
                      _ bounds: ConfigBounds? = nil, nvlabs: String? = nil,
                      _ description: String) -> ConfigKeySpec {
        ConfigKeySpec(name: name, kind: .float, defaultValue: .float(def), bounds: bounds, nvlabsDefault: nvlabs,
                      description: description, aliases: [], rejectNote: nil, field: .float(kp))
    }

    static func bool(_ name: String, _ kp: WritableKeyPath<TrainConfig, Bool> & Sendable, _ def: Bool,
                     nvlabs: String? = nil, _ description: String) -> ConfigKeySpec {
        ConfigKeySpec(name: name, kind: .bool, defaultValue: .bool(def), bounds: nil, nvlabsDefault: nvlabs,
                      description: description, aliases: [], rejectNote: nil, field: .bool(kp))
    }

    static func string(_ name: String, _ kp: WritableKeyPath<TrainConfig, String> & Sendable, _ def: String,
                       nvlabs: String? = nil, _ description: String) -> ConfigKeySpec {
        ConfigKeySpec(name: name, kind: .string, defaultValue: .string(def), bounds: nil, nvlabsDefault: nvlabs,
                      description: description, aliases: [], rejectNote: nil, field: .string(kp))
    }

    static func choice(_ name: String, _ kp: WritableKeyPath<TrainConfig, String> & Sendable, _ def: String,
                       _ choices: [String], nvlabs: String? = nil, reject: String? = nil,
                       _ description: String) -> ConfigKeySpec {
        precondition(choices.contains(def), "default of \(name) not among its choices")
        return ConfigKeySpec(name: name, kind: .choice(choices), defaultValue: .string(def), bounds: nil,
                             nvlabsDefault: nvlabs, description: description, aliases: [], rejectNote: reject,
                             field: .string(kp))
    }

    /// A list of class colours; empty by default (NVlabs has no such option).
    static func colors(_ name: String, _ kp: WritableKeyPath<TrainConfig, [[Int]]> & Sendable,
                       _ description: String) -> ConfigKeySpec {
        ConfigKeySpec(name: name, kind: .colors, defaultValue: .colors([]), bounds: nil, nvlabsDefault: nil,
                      description: description, aliases: [], rejectNote: nil, field: .colors(kp))
    }
}

/// A default NVlabs sets over an option's declared one, and when.
public struct NVlabsOverride: Sendable {
    public let value: String
    /// e.g. `dataset_mode cityscapes`, `no_TTUR`.
    public let condition: String

    init(_ value: String, with condition: String) {
        self.value = value
        self.condition = condition
    }
}

extension TrainConfig {
    /// Every config key, in the order used by `yaml()` and the README table.
    public static let keys: [ConfigKeySpec] = [
        // Experiment
        .string("name", \.name, "tiny", nvlabs: "label2coco",
                "config / experiment name; the run directory defaults to runs/<name>"),
        .string("run_dir", \.run_dir, "",
                "run directory (config.yaml, checkpoints/, samples/, logs); empty = runs/<name>"),
        .int("seed", \.seed, 0, .atLeast(0),
             "seed of parameter init, data order, flips and synthetic data"),

        // Data
        .choice("dataset_mode", \.dataset_mode, "synthetic", ["synthetic", "custom", "cityscapes", "ade20k", "classified_tiles"], nvlabs: "coco",
                "data layout: synthetic (generated scenes), custom (NVlabs label_dir/image_dir), cityscapes and ade20k (the official download under dataroot, with NVlabs' defaults for that mode), classified_tiles (ArcGIS images/ + labels/)"),
        .string("dataroot", \.dataroot, "", nvlabs: "./datasets/cityscapes/",
                "dataset root; classified_tiles reads <dataroot>/images and <dataroot>/labels; custom defaults label_dir, image_dir, instance_dir to <dataroot>/train_label, train_img, train_inst (synth-data's layout)"),
        .string("label_dir", \.label_dir, "", nvlabs: "(required for custom)",
                "custom: folder of label maps (8-bit PNG class ids); default <dataroot>/train_label"),
        .string("image_dir", \.image_dir, "", nvlabs: "(required for custom)",
                "custom: folder of photos (PNG or JPEG), paired with labels by sorted name stem; default <dataroot>/train_img"),
        .string("instance_dir", \.instance_dir, "", nvlabs: "\"\"",
                "custom: folder of instance maps (used when no_instance is false); default <dataroot>/train_inst"),
        .choice("label_encoding", \.label_encoding, "index", ["index", "rgb"],
                "how label pixels encode classes: index (8-bit gray or palette PNG, value = class id) or rgb (colour-coded: label_colors, or classified_tiles' esri_model_definition.emd colours)"),
        .colors("label_colors", \.label_colors,
                "label_encoding rgb: the colour of each class id, e.g. [[0, 0, 0], [128, 64, 128]] (required for custom; overrides the .emd colours of classified_tiles); with contain_dontcare_label, entry label_nc is the don't-care colour"),
        .int("label_nc", \.label_nc, 8, .between(1, 255), nvlabs: "182",
             "number of label classes, not counting the don't-care label")
            .nvlabs(overrides: .init("13", with: "dataset_mode custom"), .init("150", with: "dataset_mode ade20k"),
                    .init("35", with: "dataset_mode cityscapes")),
        .bool("contain_dontcare_label", \.contain_dontcare_label, false, nvlabs: "false",
              "label value 255 is don't-care (adds one input channel)")
            .nvlabs(overrides: .init("true", with: "dataset_mode coco, ade20k")),
        .bool("no_instance", \.no_instance, true, nvlabs: "false",
              "do not feed an instance edge map (default true here: synthetic and tile data have no instance maps)")
            .nvlabs(overrides: .init("true", with: "dataset_mode ade20k")),
        .int("max_dataset_size", \.max_dataset_size, 0, .atLeast(0), nvlabs: "sys.maxsize (no limit)",
             "use only the first N samples in sorted order (0 = all); synthetic: the first N scenes"),
        .choice("phase", \.phase, "train", ["train", "test"], nvlabs: "train",
                "which split is read: test reads cityscapes' and ade20k's val split and custom's <dataroot>/val_label, val_img, val_inst (generate --phase sets it)"),
        .bool("no_pairing_check", \.no_pairing_check, false, nvlabs: "false",
              "cityscapes, ade20k: pair label maps and images by sorted position without comparing their names"),
        .bool("ade20k_shift_labels", \.ade20k_shift_labels, false,
              "ade20k: feed label - 1 with 0 (other) as don't-care, the shift NVlabs' ADE20KDataset.postprocess intends but never stores; false = the raw ids 0...150 NVlabs really feeds (and its pretrained weights expect)"),
        .int("synthetic_count", \.synthetic_count, 128, .atLeast(1),
             "synthetic: number of generated scenes"),
        .int("synthetic_classes", \.synthetic_classes, 8, .atLeast(2),
             "synthetic: number of scene classes (sky, water, grass, ...); must be <= label_nc"),

        // Preprocessing
        .choice("preprocess_mode", \.preprocess_mode, "resize_and_crop",
                ["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "scale_shortside",
                 "scale_shortside_and_crop", "fixed", "none"], nvlabs: "scale_width_and_crop",
                "scaling and cropping at load time, as NVlabs")
            .nvlabs(overrides: .init("resize_and_crop", with: "dataset_mode custom, coco, ade20k"),
                    .init("fixed", with: "dataset_mode cityscapes")),
        .int("load_size", \.load_size, 72, .atLeast(1), nvlabs: "1024",
             "images are scaled to this size, then cropped to crop_size")
            .nvlabs(overrides: .init("286", with: "dataset_mode custom, coco, ade20k (training)"),
                    .init("512", with: "dataset_mode cityscapes")),
        .int("crop_size", \.crop_size, 64, .atLeast(1), nvlabs: "512",
             "width of the training crop; a multiple of 32/64/128 for num_upsampling_layers normal/more/most")
            .nvlabs(overrides: .init("256", with: "dataset_mode custom, coco, ade20k")),
        .float("aspect_ratio", \.aspect_ratio, 1.0, .atLeast(0, exclusive: true), nvlabs: "1.0",
               "width / height of the crop; height = round(crop_size / aspect_ratio)")
            .nvlabs(overrides: .init("2.0", with: "dataset_mode cityscapes")),
        .bool("no_flip", \.no_flip, false, nvlabs: "false",
              "do not flip images horizontally at random"),
        .bool("serial_batches", \.serial_batches, false, nvlabs: "false",
              "take images in order instead of a shuffled order each epoch"),

        // Generator
        .int("ngf", \.ngf, 16, .atLeast(1), nvlabs: "64",
             "generator filters in the last layer (the first layer has 16*ngf)"),
        .choice("num_upsampling_layers", \.num_upsampling_layers, "normal", ["normal", "more", "most"], nvlabs: "normal",
                "generator depth: 5, 6 or 7 upsamplings")
            .nvlabs(overrides: .init("more", with: "dataset_mode cityscapes")),
        .int("spade_hidden", \.spade_hidden, 32, .atLeast(1), nvlabs: "128 (hard-coded)",
             "hidden channels of each SPADE block's shared conv"),
        .choice("norm_G", \.norm_G, "spectralspadesyncbatch3x3", ["spectralspadesyncbatch3x3", "spectralspadebatch3x3"],
                nvlabs: "spectralinstance",
                reject: "spade-dist implements only spectral-norm convs with SPADE over parameter-free (synchronized) batch norm and 3x3 kernels",
                "generator norm; both values mean spectral norm + SPADE with param-free sync batch norm, 3x3")
            .nvlabs(overrides: .init("spectralspadesyncbatch3x3", with: "netG spade (NVlabs' default generator)")),

        // Discriminator
        .int("ndf", \.ndf, 16, .atLeast(1), nvlabs: "64",
             "discriminator filters in the first layer"),
        .int("n_layers_D", \.n_layers_D, 4, .atLeast(1), nvlabs: "4",
             "layers of each PatchGAN discriminator"),
        .int("num_D", \.num_D, 2, .atLeast(1), nvlabs: "2",
             "discriminator scales (multiscale discriminator)"),
        .choice("norm_D", \.norm_D, "spectralinstance", ["spectralinstance"], nvlabs: "spectralinstance",
                reject: "spade-dist implements only spectral-norm convs with instance norm in the discriminator",
                "discriminator norm: spectral norm + instance norm"),

        // Losses
        .choice("gan_mode", \.gan_mode, "hinge", GANMode.allCases.map(\.rawValue), nvlabs: "hinge",
                "GAN loss, as NVlabs' GANLoss: hinge; ls (least squares); original (cross entropy on logits); w (Wasserstein, without gradient penalty)"),
        .float("lambda_feat", \.lambda_feat, 10.0, .atLeast(0), nvlabs: "10.0",
               "weight of the discriminator feature-matching loss"),
        .bool("no_ganFeat_loss", \.no_ganFeat_loss, false, nvlabs: "false",
              "do not use the feature-matching loss"),

        // Optimization
        .int("batchSize", \.batchSize, 2, .atLeast(1), nvlabs: "1",
             "images per rank per step: the global batch is batchSize * ranks (NVlabs' batchSize is the global batch, split across its GPUs)")
            .nvlabs(overrides: .init("16", with: "dataset_mode cityscapes")),
        .float("lr", \.lr, 0.0002, .atLeast(0, exclusive: true), nvlabs: "0.0002",
               "initial Adam learning rate (TTUR: G uses lr/2, D uses 2*lr)"),
        .float("beta1", \.beta1, 0.0, .between(0, 1, maxExclusive: true), nvlabs: "0.0",
               "Adam beta1 of G and D (default 0.5 with no_TTUR)")
            .nvlabs(overrides: .init("0.5", with: "no_TTUR")),
        .float("beta2", \.beta2, 0.9, .between(0, 1, maxExclusive: true), nvlabs: "0.9",
               "Adam beta2 of G and D (default 0.999 with no_TTUR)")
            .nvlabs(overrides: .init("0.999", with: "no_TTUR")),
        .bool("no_TTUR", \.no_TTUR, false, nvlabs: "false",
              "same lr for G and D instead of TTUR (G lr/2, D 2*lr); also makes beta1, beta2 default to 0.5, 0.999"),
        .int("niter", \.niter, 50, .atLeast(0), nvlabs: "50",
             "epochs at the initial learning rate"),
        .int("niter_decay", \.niter_decay, 0, .atLeast(0), nvlabs: "0",
             "epochs over which the learning rate decays linearly to zero after niter"),
        .int("d_steps_per_g", \.d_steps_per_g, 1, .atLeast(1), nvlabs: "1", aliases: ["D_steps_per_G"],
             "discriminator steps per generator step (k-1 extra D-only steps on fresh batches)"),
        .int("steps", \.steps, 300, .atLeast(0),
             "total generator steps of the run; 0 = (niter + niter_decay) epochs"),
        .choice("on_nonfinite", \.on_nonfinite, "skip", ["skip", "stop"],
                "on a NaN/Inf loss or gradient: skip the step (and count it) or stop the run"),
        .int("max_skipped_steps", \.max_skipped_steps, 20, .atLeast(0),
             "on_nonfinite skip: steps in a row skipped after which the run stops (exit 1, last checkpoint kept; 0 = never)"),

        // Outputs
        .int("log_every", \.log_every, 10, .atLeast(1),
             "steps between metrics.jsonl / TensorBoard records"),
        .int("sample_every", \.sample_every, 50, .atLeast(0),
             "steps between sample grids in samples/ (0 = never)"),
        .int("num_samples", \.num_samples, 4, .atLeast(1),
             "images (rows) in a sample grid"),
        .int("checkpoint_every", \.checkpoint_every, 100, .atLeast(0),
             "steps between checkpoints (0 = only at the end of the run)"),
        .int("keep_checkpoints", \.keep_checkpoints, 3, .atLeast(0),
             "newest checkpoints to keep (0 = keep all)"),

        // Distributed and performance
        .float("bucket_mb", \.bucket_mb, 4.0, .atLeast(0, exclusive: true),
               "gradient reduction bucket size in MiB"),
        .choice("gradient_transport", \.gradient_transport, "auto", ["auto", "mpi"],
                "how gradients are summed across ranks: auto = in node-shared memory on each node, then (several nodes with equal rank counts) reduce-scatter between nodes with the optimizer sharded over all ranks; mpi = MPI's all-reduce over all ranks, a full optimizer per rank"),
        .choice("gradient_dtype", \.gradient_dtype, "float32", ["float32", "bfloat16"],
                "gradients on the wire between nodes (hierarchical reduction): bfloat16 halves the reduce-scatter's bytes; sums stay float32"),
        .int("blas_threads", \.blas_threads, 0, .atLeast(0),
             "OpenBLAS threads per rank (0 = cores per node / ranks per node)"),
        .int("drift_check_every", \.drift_check_every, 100, .atLeast(0),
             "steps between replica-drift checksums across ranks (0 = never)"),
        .float("stall_timeout_s", \.stall_timeout_s, 300, .atLeast(0),
               "seconds a rank may go without progress (stopped, hung, cut off) before rank 0 names it and ends the job (0 = wait forever); must exceed the longest step phase"),
    ]

    /// Looks a key up by name or alias.
    public static func spec(named name: String) -> ConfigKeySpec? {
        keys.first { $0.name == name || $0.aliases.contains(name) }
    }
}

// MARK: YAML scalar formatting

/// Shortest round-trip decimal of `v`, always with a `.` so YAML 1.1 readers see a float.
func yamlFloat(_ v: Double) -> String {
    var s = "\(v)"
    if !s.contains(".") && !s.contains("n") && !s.contains("i") {   // not nan/inf
        if let e = s.firstIndex(of: "e") { s.insert(contentsOf: ".0", at: e) } else { s += ".0" }
    }
    return s
}

/// `s` as a YAML scalar: plain when unambiguous, else double-quoted with JSON escapes.
func yamlString(_ s: String) -> String {
    let plainOK = s.unicodeScalars.first.map { CharacterSetCheck.isPlainStart($0) } ?? false
        && s.unicodeScalars.allSatisfy(CharacterSetCheck.isPlainBody)
        && !yamlReservedWords.contains(s.lowercased())
        && Double(s) == nil
    return plainOK ? s : jsonStringLiteral(s)
}

private let yamlReservedWords: Set<String> = ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"]

private enum CharacterSetCheck {
    static func isPlainStart(_ u: Unicode.Scalar) -> Bool {
        (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || u == "_"
    }
    static func isPlainBody(_ u: Unicode.Scalar) -> Bool {
        isPlainStart(u) || (u >= "0" && u <= "9") || u == "." || u == "/" || u == "-"
    }
}
