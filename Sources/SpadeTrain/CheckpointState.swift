import Foundation
import SafeTensors
import SpadeDist
import SpadeNN

/// Where training stands, as stored in a checkpoint's `__metadata__` (DESIGN §9).
public struct TrainingProgress: Equatable, Sendable {
    /// Generator steps done.
    public var step = 0
    /// Epoch of the next batch (0-based) and global samples consumed in it.
    public var epoch = 0
    public var dataIndex = 0
    public var skippedSteps = 0
    public init(step: Int = 0, epoch: Int = 0, dataIndex: Int = 0, skippedSteps: Int = 0) {
        self.step = step; self.epoch = epoch; self.dataIndex = dataIndex; self.skippedSteps = skippedSteps
    }
}

/// A checkpoint that cannot be used: the file and the tensor or key named.
public struct CheckpointError: ExitCodeError, Sendable {
    public var exitCode: Int32 { 2 }
    public var path: String
    public var message: String
    public init(path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// Checkpoint = one safetensors file: `netG.<key>`, `netD.<key>` (NVlabs state_dict
/// keys), `optG.<key>.exp_avg`, `optG.<key>.exp_avg_sq`, `optG.step` (same for D),
/// and metadata `format`, `step`, `epoch`, `data_position`, `world_size`, `seed`, `config`.
public enum Checkpoint {
    public static let format = "spade-dist/1"

    /// Serializes both networks, both optimizers and the progress.
    public static func make(_ it: TrainingIteration, progress: TrainingProgress, config: TrainConfig,
                            worldSize: Int) -> SafeTensorsFile {
        var file = SafeTensorsFile()
        add(it.generator.state, it.adamG, net: "netG", opt: "optG", to: &file)
        add(it.discriminator.state, it.adamD, net: "netD", opt: "optD", to: &file)
        file.metadata = [
            "format": format,
            "step": String(progress.step),
            "epoch": String(progress.epoch),
            "data_position": "\(progress.epoch):\(progress.dataIndex)",
            "skipped_steps": String(progress.skippedSteps),
            "world_size": String(worldSize),
            "seed": String(config.seed),
            "config": config.yaml(),
        ]
        return file
    }

    static func add(_ state: ModelState, _ adam: Adam, net: String, opt: String, to file: inout SafeTensorsFile) {
        for p in state.params {
            file["\(net).\(p.name)"] = TensorRecord(shape: p.shape, floats: Array(UnsafeBufferPointer(start: state.values + p.offset, count: p.count)))
            file["\(opt).\(p.name).exp_avg"] = TensorRecord(shape: p.shape, floats: Array(UnsafeBufferPointer(start: adam.expAvg + p.offset, count: p.count)))
            file["\(opt).\(p.name).exp_avg_sq"] = TensorRecord(shape: p.shape, floats: Array(UnsafeBufferPointer(start: adam.expAvgSq + p.offset, count: p.count)))
        }
        for b in state.buffers {
            file["\(net).\(b.name)"] = TensorRecord(shape: b.shape, floats: Array(UnsafeBufferPointer(start: state.bufferValues + b.offset, count: b.count)))
        }
        for (i, name) in state.counterNames.enumerated() {
            file["\(net).\(name)"] = TensorRecord(shape: [], int64s: [state.counters[i]])
        }
        file["\(opt).step"] = TensorRecord(shape: [], int64s: [adam.step])
    }

    /// What `load` found, for the notices the trainer prints.
    public struct Loaded: Sendable {
        public var discriminatorLoaded: Bool
        public var optimizerGLoaded: Bool
        public var optimizerDLoaded: Bool
        public var ignoredTensors: [String]
    }

    /// Loads `netG.*` (required), and `netD.*`, `optG.*`, `optD.*` when present, validating
    /// every shape. Missing discriminator or optimizer state is left as it is (fresh).
    public static func load(_ file: SafeTensorsFile, path: String, into it: TrainingIteration,
                            requireAll: Bool = false) throws -> Loaded {
        try loadNet(file, path: path, prefix: "netG.", into: it.generator.state)
        let hasD = file.tensors.keys.contains { $0.hasPrefix("netD.") }
        if hasD || requireAll { try loadNet(file, path: path, prefix: "netD.", into: it.discriminator.state) }
        let hasOptG = file["optG.step"] != nil, hasOptD = file["optD.step"] != nil
        if hasOptG || requireAll { try loadAdam(file, path: path, prefix: "optG.", state: it.generator.state, adam: it.adamG) }
        if hasOptD || requireAll { try loadAdam(file, path: path, prefix: "optD.", state: it.discriminator.state, adam: it.adamD) }
        let known = Set(it.generator.state.stateKeys.map { "netG." + $0 } + it.discriminator.state.stateKeys.map { "netD." + $0 })
        let ignored = file.names.filter { name in
            !known.contains(name) && !name.hasPrefix("optG.") && !name.hasPrefix("optD.")
        }
        return Loaded(discriminatorLoaded: hasD, optimizerGLoaded: hasOptG, optimizerDLoaded: hasOptD,
                      ignoredTensors: ignored)
    }

    /// Loads one network's parameters, buffers and counters (`<prefix><key>`).
    public static func loadNet(_ file: SafeTensorsFile, path: String, prefix: String, into state: ModelState) throws {
        for entry in state.params + state.buffers {
            let name = prefix + entry.name
            guard let t = file[name] else { throw CheckpointError(path: path, "tensor '\(name)' is missing") }
            guard t.shape == entry.shape, t.dtype == .f32 || t.dtype == .f64 else {
                throw CheckpointError(path: path, "tensor '\(name)' is \(t.dtype.rawValue) \(t.shape), the model needs F32 \(entry.shape)")
            }
            state.assign(entry.name, t.floats)
        }
        for name in state.counterNames {
            // NVlabs checkpoints may lack num_batches_tracked (older torch); it has no numerical effect.
            guard let t = file[prefix + name] else { continue }
            guard t.count == 1, t.dtype == .i64 || t.dtype == .i32, plausibleCount(t.int64s[0]) else {
                throw CheckpointError(path: path, "tensor '\(prefix + name)' must be an integer scalar in 0 ..< 2^53")
            }
            _ = state.setCounter(named: name, t.int64s[0])
        }
    }

    static func loadAdam(_ file: SafeTensorsFile, path: String, prefix: String, state: ModelState, adam: Adam) throws {
        guard let step = file[prefix + "step"], step.count == 1, step.dtype == .i64 || step.dtype == .f32,
              plausibleCount(step.int64s[0]) else {
            throw CheckpointError(path: path, "tensor '\(prefix)step' is missing or not a scalar in 0 ..< 2^53")
        }
        for p in state.params {
            for (suffix, dst) in [("exp_avg", adam.expAvg), ("exp_avg_sq", adam.expAvgSq)] {
                let name = "\(prefix)\(p.name).\(suffix)"
                guard let t = file[name] else { throw CheckpointError(path: path, "tensor '\(name)' is missing") }
                guard t.shape == p.shape else {
                    throw CheckpointError(path: path, "tensor '\(name)' has shape \(t.shape), the model needs \(p.shape)")
                }
                t.floats.withUnsafeBufferPointer { (dst + p.offset).update(from: $0.baseAddress!, count: p.count) }
            }
        }
        adam.step = step.int64s[0]
    }

    /// Reads a checkpoint file; a missing or damaged file is a `CheckpointError` naming it (exit 2).
    public static func read(path: String) throws -> SafeTensorsFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CheckpointError(path: path, "no such checkpoint file")
        }
        guard !isDirectory.boolValue else { throw CheckpointError(path: path, "is a directory, not a checkpoint file") }
        do { return try SafeTensorsFile.read(path: path) } catch let e as SafeTensorsError {
            throw CheckpointError(path: path, "not a valid safetensors file: " + e.reason)
        }
    }

    /// The N of `spade-dist/N`, nil for any other format string.
    static func formatVersion(_ format: String) -> Int? {
        format.hasPrefix("spade-dist/") ? Int(format.dropFirst("spade-dist/".count)) : nil
    }

    /// Counts read from a file (steps, positions, batch counters) are non-negative and small
    /// enough that counting on from them cannot overflow.
    static func plausibleCount(_ v: Int64) -> Bool { v >= 0 && v < 1 << 53 }

    /// Reads the progress from a spade-dist checkpoint's metadata.
    public static func progress(_ file: SafeTensorsFile, path: String) throws -> TrainingProgress {
        if let found = file.metadata["format"], let version = formatVersion(found), version > formatVersion(format)! {
            throw CheckpointError(path: path, "written by a newer spade-dist (format '\(found)'); this build reads '\(format)': update spade-dist to resume it")
        }
        guard file.metadata["format"] == format else {
            throw CheckpointError(path: path, "not a spade-dist checkpoint (metadata format is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"), expected '\(format)'); use --init to start from its weights")
        }
        guard let step = file.metadata["step"].flatMap(Int.init),
              let pos = file.metadata["data_position"]?.split(separator: ":"), pos.count == 2,
              let epoch = Int(pos[0]), let index = Int(pos[1]),
              [step, epoch, index].allSatisfy({ plausibleCount(Int64($0)) }) else {
            throw CheckpointError(path: path, "metadata 'step' or 'data_position' is missing or malformed")
        }
        return TrainingProgress(step: step, epoch: epoch, dataIndex: index,
                                skippedSteps: file.metadata["skipped_steps"].flatMap(Int.init) ?? 0)
    }
}
