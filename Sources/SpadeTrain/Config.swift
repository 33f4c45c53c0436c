import Foundation
import SpadeData
import Yams

/// The effective training config: flat keys named as NVlabs SPADE's options.
///
/// Defaults, types, ranges and descriptions live in `TrainConfig.keys`
/// (ConfigKeys.swift); the initial values below are placeholders that `init()`
/// overwrites with the table's defaults (the embedded "tiny" config).
public struct TrainConfig: Sendable {
    public var name = ""
    public var run_dir = ""
    public var seed = 0
    public var dataset_mode = ""
    public var dataroot = ""
    public var label_dir = ""
    public var image_dir = ""
    public var instance_dir = ""
    public var label_encoding = ""
    public var label_colors: [[Int]] = []
    public var label_nc = 0
    public var contain_dontcare_label = false
    public var no_instance = false
    public var max_dataset_size = 0
    public var phase = ""
    public var no_pairing_check = false
    public var ade20k_shift_labels = false
    public var synthetic_count = 0
    public var synthetic_classes = 0
    public var preprocess_mode = ""
    public var load_size = 0
    public var crop_size = 0
    public var aspect_ratio = 0.0
    public var no_flip = false
    public var serial_batches = false
    public var ngf = 0
    public var num_upsampling_layers = ""
    public var spade_hidden = 0
    public var norm_G = ""
    public var ndf = 0
    public var n_layers_D = 0
    public var num_D = 0
    public var norm_D = ""
    public var gan_mode = ""
    public var lambda_feat = 0.0
    public var no_ganFeat_loss = false
    public var batchSize = 0
    public var lr = 0.0
    public var beta1 = 0.0
    public var beta2 = 0.0
    public var no_TTUR = false
    public var niter = 0
    public var niter_decay = 0
    public var d_steps_per_g = 0
    public var steps = 0
    public var on_nonfinite = ""
    public var max_skipped_steps = 0
    public var log_every = 0
    public var sample_every = 0
    public var num_samples = 0
    public var checkpoint_every = 0
    public var keep_checkpoints = 0
    public var bucket_mb = 0.0
    public var gradient_transport = ""
    public var gradient_dtype = ""
    public var blas_threads = 0
    public var drift_check_every = 0
    public var stall_timeout_s = 0.0

    /// Keys given explicitly (YAML or `--set`), for NVlabs's no_TTUR-dependent beta defaults.
    public private(set) var explicitKeys: Set<String> = []

    /// The embedded default config ("tiny"): every key at its table default.
    public init() {
        for spec in Self.keys { setValue(spec.defaultValue, for: spec) }
    }

    // MARK: loading

    /// Defaults, then the YAML file (if any), then `--set key=value` overrides, then validation.
    /// `isTrain` false gives NVlabs' test-time defaults (test.py) where they differ.
    public static func load(path: String?, overrides: [String] = [], isTrain: Bool = true) throws -> TrainConfig {
        var config = TrainConfig()
        if let path {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ConfigError(source: path, "is a directory, not a config file")
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ConfigError(source: path, "cannot read the config file")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ConfigError(source: path, "the config file is not UTF-8 text")
            }
            try config.apply(yaml: text, source: path)
        }
        for assignment in overrides { try config.apply(assignment: assignment) }
        config.applyConditionalDefaults(isTrain: isTrain)
        try config.validate(source: path)
        return config
    }

    /// Parses a YAML mapping of keys over the defaults, then `overrides`, and validates the result
    /// (e.g. a checkpoint's config with `generate --set`).
    public static func parse(yaml: String, source: String = "config.yaml", overrides: [String] = []) throws -> TrainConfig {
        var config = TrainConfig()
        try config.apply(yaml: yaml, source: source)
        for assignment in overrides { try config.apply(assignment: assignment) }
        config.applyConditionalDefaults()
        try config.validate(source: source)
        return config
    }

    /// Sets the keys of a flat YAML mapping; `source` names the file in errors.
    public mutating func apply(yaml: String, source: String) throws {
        var config = self
        try Self.withComposedYAML(yaml, source: source, invalid: { error in
            let detail = "\(error)".split(separator: "\n").first.map(String.init) ?? "syntax error"
            return ConfigError(source: source, "not valid YAML: \(detail)")
        }) { root in try config.apply(root: root, source: source) }
        self = config
    }

    /// Largest YAML document (config file, `--set` value, a checkpoint's config) accepted.
    public static let maxYAMLBytes = 64 << 10

    /// Composes `text` and hands its root to `body`. Yams composes nested nodes recursively (and
    /// Swift releases them recursively): 2 KiB of `{` overflowed the main thread's stack (found by
    /// fuzz/run.sh config). Every level of YAML nesting takes one of `[ { - : ?`, so a document
    /// with few of them (any real config) is composed here; others on a thread with a 512 MiB
    /// stack, which holds `maxYAMLBytes` levels.
    static func withComposedYAML(_ text: String, source: String, invalid: @escaping @Sendable (Error) -> ConfigError,
                                 _ body: @escaping (Node?) throws -> Void) throws {
        let bytes = text.utf8.count
        guard bytes <= maxYAMLBytes else {
            throw ConfigError(source: source, "\(bytes) bytes of YAML; a config is at most \(maxYAMLBytes >> 10) KiB")
        }
        let job = LargeStackJob {
            let root: Node?
            do { root = try Yams.compose(yaml: text) } catch { throw invalid(error) }
            try body(root)
        }
        let nestingMarks = text.utf8.reduce(0) { n, c in n + (c == 0x5B || c == 0x7B || c == 0x2D || c == 0x3A || c == 0x3F ? 1 : 0) }
        guard nestingMarks > 1000 else { return try job.body() }
        let thread = Thread { job.run() }
        thread.stackSize = 512 << 20
        thread.start()
        job.done.wait()
        if let error = job.error { throw error }
    }

    /// Sets the keys of a composed YAML document (nil: empty, all defaults).
    private mutating func apply(root: Node?, source: String) throws {
        guard let root else { return }     // empty file: all defaults
        guard case .mapping(let mapping) = root else {
            throw ConfigError(source: source, "expected a mapping of key: value at the top level")
        }
        var seen: Set<String> = []
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                throw ConfigError(source: source, "keys must be plain names")
            }
            let at = keyNode.mark.map { "\(source):\($0.line)" } ?? source
            let spec = try Self.lookup(keyScalar.string, source: at)
            guard seen.insert(spec.name).inserted else {
                throw ConfigError(source: at, key: spec.name, "given twice")
            }
            switch valueNode {
            case _ where spec.kind == .colors:
                try setColors(spec, valueNode, source: at)
            case .scalar(let s):
                try set(spec, text: s.string, isNull: Self.isNull(s), source: at)
            case .mapping:
                throw ConfigError(source: at, key: spec.name, "expected \(Self.article(spec.kind)), got a mapping")
            case .sequence:
                throw ConfigError(source: at, key: spec.name, "expected \(Self.article(spec.kind)), got a list")
            }
        }
    }

    /// Applies one `--set key=value` override (same typed parsing as YAML).
    public mutating func apply(assignment: String) throws {
        guard let eq = assignment.firstIndex(of: "=") else {
            throw ConfigError(source: "--set \(assignment)", "expected key=value")
        }
        let key = String(assignment[..<eq]).trimmingCharacters(in: .whitespaces)
        let value = String(assignment[assignment.index(after: eq)...])
        let spec = try Self.lookup(key, source: "--set")
        if spec.kind == .colors {
            // A list is given in YAML flow style: --set 'label_colors=[[0, 0, 0], [255, 0, 0]]'.
            var config = self
            try Self.withComposedYAML(value, source: "--set", invalid: { _ in
                ConfigError(source: "--set", key: spec.name, "expected a list of [r, g, b], got '\(value)'")
            }) { node in try config.setColors(spec, node, source: "--set") }
            self = config
        } else {
            try set(spec, text: value, isNull: false, source: "--set")
        }
    }

    private static func isNull(_ s: Node.Scalar) -> Bool {
        s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    /// Parses a list of `[r, g, b]` (nil, null or `[]` = none), checks it, and stores it.
    private mutating func setColors(_ spec: ConfigKeySpec, _ node: Node?, source: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError(source: source, key: spec.name, m) }
        func integer(_ n: Node) -> Int? {
            guard case .scalar(let s) = n else { return nil }
            return Int(s.string)
        }
        var colors: [[Int]] = []
        switch node {
        case nil:
            break
        case .scalar(let s)? where Self.isNull(s):
            break
        case .sequence(let entries)?:
            for (i, entry) in entries.enumerated() {
                let parts: [Node]
                if case .sequence(let p) = entry { parts = Array(p) } else { parts = [] }
                let rgb = parts.compactMap(integer)
                guard !parts.isEmpty, rgb.count == parts.count else {
                    throw fail("entry \(i) must be a list of integers [r, g, b], got \(Self.flowText(entry))")
                }
                colors.append(rgb)
            }
        case let other?:
            throw fail("expected a list of [r, g, b], got \(Self.flowText(other))")
        }
        if let problem = labelColorsProblem(colors) { throw fail(problem) }
        setValue(.colors(colors), for: spec)
        explicitKeys.insert(spec.name)
    }

    /// A YAML node on one line, for messages: `'abc'`, `['1', '2']` or "a mapping"; cut after
    /// `limit` characters (a hostile node may be deep, or huge through aliases).
    private static func flowText(_ node: Node, limit: Int = 60) -> String {
        var out = ""
        func add(_ n: Node) {
            guard out.count < limit else { return }
            switch n {
            case .scalar(let s): out += "'\(s.string)'"
            case .sequence(let items):
                out += "["
                for (i, item) in items.enumerated() {
                    guard out.count < limit else { break }
                    if i > 0 { out += ", " }
                    add(item)
                }
                out += "]"
            case .mapping: out += "a mapping"
            }
        }
        add(node)
        return out.count <= limit ? out : String(out.prefix(limit)) + " ..."
    }

    /// Defaults that depend on other keys, for the keys not given explicitly: NVlabs' defaults of
    /// the dataset mode (`datasetModeDefaults`), and with no_TTUR the Adam betas 0.5, 0.999.
    public mutating func applyConditionalDefaults(isTrain: Bool = true) {
        for (key, value) in Self.datasetModeDefaults(mode: dataset_mode, isTrain: isTrain) where !explicitKeys.contains(key) {
            guard let spec = Self.spec(named: key) else { preconditionFailure("dataset mode default for unknown key \(key)") }
            setValue(value, for: spec)
        }
        if no_TTUR {
            if !explicitKeys.contains("beta1") { beta1 = 0.5 }
            if !explicitKeys.contains("beta2") { beta2 = 0.999 }
        }
    }

    private static func lookup(_ key: String, source: String) throws -> ConfigKeySpec {
        if let spec = spec(named: key) { return spec }
        if let near = closestKey(to: key) {
            throw ConfigError(source: source, "unknown key '\(key)' (did you mean '\(near)'?)")
        }
        throw ConfigError(source: source, "unknown key '\(key)' (the keys are listed in README.md)")
    }

    /// Parses `text` as the key's type, checks its range or choices, and stores it.
    private mutating func set(_ spec: ConfigKeySpec, text raw: String, isNull: Bool, source: String) throws {
        func fail(_ m: String) -> ConfigError { ConfigError(source: source, key: spec.name, m) }
        let text = raw.trimmingCharacters(in: .whitespaces)
        let got = isNull ? "null" : "'\(raw)'"
        let value: ConfigValue
        switch spec.kind {
        case .int:
            guard !isNull, let v = Int(text.hasPrefix("+") ? String(text.dropFirst()) : text) else {
                throw fail("expected an integer, got \(got)")
            }
            value = .int(v)
        case .float:
            guard !isNull, let v = Double(text), !text.isEmpty else { throw fail("expected a number, got \(got)") }
            guard v.isFinite else { throw fail("expected a finite number, got \(got)") }
            value = .float(v)
        case .bool:
            switch isNull ? "" : text.lowercased() {
            case "true", "yes", "on": value = .bool(true)
            case "false", "no", "off": value = .bool(false)
            default: throw fail("expected true or false, got \(got)")
            }
        case .string:
            value = .string(isNull ? "" : raw)
        case .choice(let choices):
            guard !isNull, choices.contains(text) else {
                let list = choices.map { "'\($0)'" }.joined(separator: ", ")
                var m = "\(got) is not supported (must be \(choices.count == 1 ? "" : "one of ")\(list))"
                if let note = spec.rejectNote { m += ": \(note)" }
                throw fail(m)
            }
            value = .string(text)
        case .colors:
            preconditionFailure("\(spec.name) is a list: setColors parses it")
        }
        if let bounds = spec.bounds {
            let x: Double
            switch value {
            case .int(let v): x = Double(v)
            case .float(let v): x = v
            default: x = 0
            }
            guard bounds.contains(x) else {
                throw fail("\(value) is out of range (must be \(bounds.text))")
            }
        }
        setValue(value, for: spec)
        explicitKeys.insert(spec.name)
    }

    private mutating func setValue(_ value: ConfigValue, for spec: ConfigKeySpec) {
        switch (spec.field, value) {
        case let (.int(kp), .int(v)): self[keyPath: kp] = v
        case let (.float(kp), .float(v)): self[keyPath: kp] = v
        case let (.bool(kp), .bool(v)): self[keyPath: kp] = v
        case let (.string(kp), .string(v)): self[keyPath: kp] = v
        case let (.colors(kp), .colors(v)): self[keyPath: kp] = v
        default: preconditionFailure("value \(value) does not fit key \(spec.name)")
        }
    }

    /// The current value of `key` (name or alias), nil if there is no such key.
    public func value(of key: String) -> ConfigValue? {
        guard let spec = Self.spec(named: key) else { return nil }
        return value(for: spec)
    }

    func value(for spec: ConfigKeySpec) -> ConfigValue {
        switch spec.field {
        case .int(let kp): return .int(self[keyPath: kp])
        case .float(let kp): return .float(self[keyPath: kp])
        case .bool(let kp): return .bool(self[keyPath: kp])
        case .string(let kp): return .string(self[keyPath: kp])
        case .colors(let kp): return .colors(self[keyPath: kp])
        }
    }

    private static func article(_ kind: ConfigKeySpec.Kind) -> String {
        switch kind {
        case .int: return "an integer"
        case .float: return "a number"
        case .bool: return "true or false"
        case .string, .choice: return "a string"
        case .colors: return "a list of [r, g, b]"
        }
    }

    /// The known key nearest to a misspelt one (edit distance, ignoring case and `_`), if close.
    public static func closestKey(to key: String) -> String? {
        func norm(_ s: String) -> [Character] { Array(s.lowercased().filter { $0 != "_" }) }
        let k = norm(key)
        var best: (String, Int)?
        for spec in keys {
            for candidate in [spec.name] + spec.aliases {
                let d = editDistance(k, norm(candidate))
                if best == nil || d < best!.1 { best = (spec.name, d) }
            }
        }
        guard let (name, d) = best, d <= max(2, k.count / 3) else { return nil }
        return name
    }

    // MARK: validation

    /// Checks relations between keys (single values were checked when set).
    public func validate(source: String? = nil) throws {
        func fail(_ key: String, _ m: String) -> ConfigError { ConfigError(source: source, key: key, m) }
        // Single values again, so a config built in code is held to the same table.
        for spec in Self.keys {
            let v = value(for: spec)
            if let b = spec.bounds {
                let x: Double
                switch v { case .int(let i): x = Double(i); case .float(let f): x = f; default: continue }
                guard b.contains(x), x.isFinite else { throw fail(spec.name, "\(v) is out of range (must be \(b.text))") }
            }
            if case .choice(let c) = spec.kind, case .string(let s) = v, !c.contains(s) {
                throw fail(spec.name, "'\(s)' is not supported (must be one of \(c.map { "'\($0)'" }.joined(separator: ", ")))")
            }
            if case .colors(let colors) = v, let problem = labelColorsProblem(colors) { throw fail(spec.name, problem) }
        }
        // DESIGN §9: crop_size a multiple of 2^num_up; height consistent with the latent grid.
        let up = upsamplingFactor
        guard crop_size % up == 0 else {
            throw fail("crop_size", "\(crop_size) is not a multiple of \(up) (required by num_upsampling_layers \(num_upsampling_layers))")
        }
        let sw = crop_size / up
        let sh = roundHalfEven(Double(sw) / aspect_ratio)
        let height = roundHalfEven(Double(crop_size) / aspect_ratio)
        guard sh >= 1, height == sh * up else {
            throw fail("aspect_ratio", "\(aspect_ratio) with crop_size \(crop_size) gives height \(height), which is not \(up) * round(\(sw) / \(aspect_ratio)) = \(sh * up) (num_upsampling_layers \(num_upsampling_layers))")
        }
        if preprocess_mode.hasSuffix("crop") && load_size < crop_size {
            throw fail("load_size", "\(load_size) is smaller than crop_size \(crop_size) (preprocess_mode \(preprocess_mode) crops crop_size from load_size)")
        }
        switch dataset_mode {
        case "custom":
            // NVlabs' custom dataset takes label_dir and image_dir; with only dataroot they default to
            // dataroot/train_label, dataroot/train_img (and train_inst), the layout synth-data writes.
            if dataroot.isEmpty {
                if label_dir.isEmpty { throw fail("label_dir", "required when dataset_mode is custom (or set dataroot)") }
                if image_dir.isEmpty { throw fail("image_dir", "required when dataset_mode is custom (or set dataroot)") }
                if !no_instance && instance_dir.isEmpty {
                    throw fail("instance_dir", "required when no_instance is false (or set dataroot, or no_instance: true)")
                }
            }
        case "classified_tiles":
            if dataroot.isEmpty { throw fail("dataroot", "required when dataset_mode is classified_tiles (the folder holding images/ and labels/)") }
            if !no_instance { throw fail("no_instance", "must be true: classified_tiles has no instance maps") }
        case "cityscapes", "ade20k":
            if dataroot.isEmpty { throw fail("dataroot", "required when dataset_mode is \(dataset_mode) (the folder of the official download)") }
            if dataset_mode == "ade20k" && !no_instance { throw fail("no_instance", "must be true: ADE20K has no instance maps") }
            for (key, value) in [("label_dir", label_dir), ("image_dir", image_dir), ("instance_dir", instance_dir)] where !value.isEmpty {
                throw fail(key, "is not used by dataset_mode \(dataset_mode), which reads the official tree under dataroot")
            }
        default:
            if !no_instance { throw fail("no_instance", "must be true: synthetic data has no instance maps") }
            if synthetic_classes > label_nc {
                throw fail("synthetic_classes", "\(synthetic_classes) exceeds label_nc \(label_nc)")
            }
        }
        if ade20k_shift_labels {
            if dataset_mode != "ade20k" { throw fail("ade20k_shift_labels", "applies to dataset_mode ade20k only") }
            if !contain_dontcare_label { throw fail("ade20k_shift_labels", "makes ADE20K's 0 (other) don't-care: needs contain_dontcare_label: true") }
        }
        if label_encoding == "rgb" {
            if dataset_mode == "cityscapes" || dataset_mode == "ade20k" {
                throw fail("label_encoding", "rgb needs colour-coded label files; \(dataset_mode) labels are class ids (use index)")
            }
            if dataset_mode == "synthetic" {
                throw fail("label_encoding", "rgb needs label files; synthetic labels are class ids (use index)")
            }
            if dataset_mode == "custom" && label_colors.isEmpty {
                throw fail("label_colors", "required when label_encoding is rgb with dataset_mode custom (one [r, g, b] per class id)")
            }
            // One colour per class id; with contain_dontcare_label one more, for don't-care.
            if label_colors.count > label_nc + (contain_dontcare_label ? 1 : 0) {
                let room = contain_dontcare_label ? "label_nc \(label_nc) + 1 don't-care"
                    : "label_nc \(label_nc) (a don't-care colour needs contain_dontcare_label)"
                throw fail("label_colors", "\(label_colors.count) colours for \(room)")
            }
        } else if !label_colors.isEmpty {
            throw fail("label_colors", "has no effect with label_encoding \(label_encoding); set label_encoding: rgb to use it")
        }
        if steps == 0 && niter + niter_decay == 0 {
            throw fail("steps", "0 derives the length from niter + niter_decay epochs, but both are 0")
        }
        if gradient_dtype != "float32" && gradient_transport == "mpi" {
            throw fail("gradient_dtype", "\(gradient_dtype) applies to the hierarchical reduction between nodes; gradient_transport mpi sums float32 (set gradient_transport: auto)")
        }
    }

    // MARK: derived values

    /// 2^num_up: 32, 64 or 128 for num_upsampling_layers normal, more, most.
    public var upsamplingFactor: Int {
        switch num_upsampling_layers {
        case "more": return 64
        case "most": return 128
        default: return 32
        }
    }

    /// Training image height: round(crop_size / aspect_ratio), Python's round half to even.
    public var imageHeight: Int { roundHalfEven(Double(crop_size) / aspect_ratio) }

    /// Training image width (= crop_size).
    public var imageWidth: Int { crop_size }

    /// Generator/discriminator label channels: label_nc (+1 don't-care) (+1 instance edges).
    public var semanticChannels: Int {
        label_nc + (contain_dontcare_label ? 1 : 0) + (no_instance ? 0 : 1)
    }

    /// The run directory: run_dir, or runs/<name> when empty.
    public var runDirectory: String { run_dir.isEmpty ? "runs/\(name)" : run_dir }

    /// Total generator steps: `steps`, or (niter + niter_decay) epochs of `stepsPerEpoch` when 0.
    public func totalSteps(stepsPerEpoch: Int) -> Int {
        steps > 0 ? steps : (niter + niter_decay) * stepsPerEpoch
    }

    /// NVlabs learning rates during 1-based `epoch`: lr for epochs 1...niter+1, then
    /// lr - k*lr/niter_decay after k ends of epochs past niter (NVlabs update_learning_rate,
    /// called at each epoch's end); TTUR gives G lr/2 and D 2*lr. Never below 0.
    public func learningRates(epoch: Int) -> (g: Float, d: Float) {
        var current = lr
        if niter_decay > 0 {
            let decrement = lr / Double(niter_decay)
            let ends = max(0, min(epoch - 1, niter + niter_decay) - niter)   // update_learning_rate(e) with e > niter
            for _ in 0..<ends { current -= decrement }    // repeated subtraction, as NVlabs's old_lr
            current = max(current, 0)
        }
        return no_TTUR ? (Float(current), Float(current)) : (Float(current / 2), Float(current * 2))
    }

    // MARK: output

    /// The effective config as YAML, one `key: value` line per key in table order.
    public func yaml() -> String {
        var out = "# spade-dist config (effective values; keys as in NVlabs SPADE where it has them)\n"
        for spec in Self.keys { out += "\(spec.name): \(value(for: spec))\n" }
        return out
    }

    /// The README's key table (Markdown), generated from `TrainConfig.keys`.
    public static func markdownKeyTable() -> String {
        func cell(_ s: String) -> String {   // escape what Markdown would read as a column or an HTML tag
            s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "<", with: "\\<")
        }
        var lines = [
            "| key | type | default | allowed | NVlabs default | description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for spec in keys {
            var name = "`\(spec.name)`"
            if !spec.aliases.isEmpty { name += " (also " + spec.aliases.map { "`\($0)`" }.joined(separator: ", ") + ")" }
            var def = "`\(spec.defaultValue)`"
            if case .string("") = spec.defaultValue { def = "`\"\"`" }
            lines.append("| \(name) | \(spec.kind.name) | \(cell(def)) | \(cell(spec.allowedText)) | \(cell(spec.nvlabsText)) | \(cell(spec.description)) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension TrainConfig: Equatable {
    /// Equal when every key has the same value (which keys were explicit does not matter).
    public static func == (a: TrainConfig, b: TrainConfig) -> Bool {
        keys.allSatisfy { a.value(for: $0) == b.value(for: $0) }
    }
}

/// Python 3's round(): nearest integer, ties to even.
public func roundHalfEven(_ x: Double) -> Int {
    guard x.isFinite, abs(x) < 1e15 else { return 0 }
    return Int(x.rounded(.toNearestOrEven))
}

/// Levenshtein distance.
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

/// A closure run on another thread (`TrainConfig.withComposedYAML`), which the caller waits for.
private final class LargeStackJob: @unchecked Sendable {
    let body: () throws -> Void
    let done = DispatchSemaphore(value: 0)
    private(set) var error: Error?
    init(_ body: @escaping () throws -> Void) { self.body = body }
    func run() {
        do { try body() } catch { self.error = error }
        done.signal()
    }
}
