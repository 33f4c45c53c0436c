import ArgumentParser
import Foundation
import SpadeCore
import SpadeData
import SpadeDist
import SpadeNN
import SpadeTrain

@main
struct SpadeDistCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spade-dist",
        abstract: "Train SPADE (GauGAN: semantic image synthesis) on CPUs, data-parallel over MPI.",
        discussion: """
            Run under mpirun for several ranks (`mpirun -np 2 spade-dist train`); without mpirun it
            runs as one rank. Config keys are NVlabs SPADE's option names (see README.md).
            Exit codes: 0 done, 1 runtime failure, 2 usage, config or data error.
            """,
        subcommands: [Train.self, Generate.self, Eval.self, SynthData.self, Inspect.self, Bench.self])

    static func main() {
        BLASThreads.reexecWithFastKernelsIfNeeded()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // ArgumentParser uses EX_USAGE (64) for usage errors; DESIGN §3 says 2.
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Exit code for an error: 2 for anything the user can fix (config, data, checkpoint, usage).
func exitCode(for error: Error) -> Int32 {
    if let e = error as? ExitCodeError { return e.exitCode }
    return error is SpadeData.UserError ? 2 : 1
}

/// Runs `body`, turning thrown errors into one line on stderr and the right exit code.
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch {
        FileHandle.standardError.write(Data("spade-dist: \(error)\n".utf8))
        throw ExitCode(exitCode(for: error))
    }
}

/// An error whose exit code was decided here, for `runGuarded` (which aborts all ranks with it).
struct ClassifiedError: ExitCodeError {
    var description: String
    var exitCode: Int32
    var sameOnAllRanks: Bool
}

/// Runs `body` on every rank; an error on any rank ends the job with its exit code.
func runOnAllRanks(_ body: (Communicator) throws -> Void) throws {
    let comm: Communicator
    do { comm = try makeWorldCommunicator() } catch {
        FileHandle.standardError.write(Data("spade-dist: \(error)\n".utf8))
        throw ExitCode(1)
    }
    if comm.size == 1 {
        // One process: the error is reported as by every other subcommand ("spade-dist: ..."),
        // without the "rank 0" of multi-rank jobs.
        do { try body(comm) } catch {
            fflush(nil)
            FileHandle.standardError.write(Data("spade-dist: \(error)\n".utf8))
            comm.finalize()
            throw ExitCode(exitCode(for: error))
        }
        comm.finalize()
        return
    }
    runGuarded(comm) {
        do { try body(comm) } catch let e as ExitCodeError { throw e } catch {
            throw ClassifiedError(description: "\(error)", exitCode: exitCode(for: error), sameOnAllRanks: false)
        }
    }
    comm.finalize()
}

struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config (NVlabs option names). Default: the embedded tiny config.")
    var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key.", valueName: "key=value"))
    var overrides: [String] = []
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train G and D (the embedded tiny config on synthetic data when given nothing).",
        discussion: """
            Rank 0 writes <run_dir>/config.yaml, checkpoints/, samples/, index.html, metrics.jsonl and
            TensorBoard events. SIGTERM or SIGUSR1 stops at the next step with a checkpoint (exit 0).
            """)

    @OptionGroup var configOptions: ConfigOptions

    @Option(help: ArgumentHelp("'auto' (latest checkpoint in the run directory, or start fresh) or a checkpoint path.",
                               valueName: "auto|PATH"))
    var resume: String?

    @Option(help: "Start at step 0 from these weights (netG.* required; netD.*, optG.*, optD.* used when present).")
    var `init`: String?

    @Option(help: "Total generator steps of the run (overrides 'steps'); 0 only validates config and data.")
    var steps: Int?

    @Option(help: "Run directory (overrides 'run_dir').")
    var runDir: String?

    func validate() throws {
        if resume != nil && `init` != nil { throw ValidationError("--resume and --init exclude each other") }
        if let steps, steps < 0 { throw ValidationError("--steps must be >= 0, got \(steps)") }
    }

    func run() throws {
        var options = TrainOptions()
        options.configPath = configOptions.config
        options.overrides = configOptions.overrides
        options.resume = resume
        options.initPath = `init`
        options.steps = steps
        options.runDir = runDir
        try runOnAllRanks { comm in try Trainer.run(options, communicator: comm) }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Eval-mode generator over a folder of label PNGs (--labels) or a whole split of the config's dataset (--phase).",
        discussion: """
            --labels DIR writes <out>/<label stem>.png. --phase train|test runs NVlabs test.py over that split
            of the dataset the config describes (test = Cityscapes' and ADE20K's val folders) and writes its layout:
            <out>/images/input_label/<name>.png, images/synthesized_image/<name>.png, images/real_image/<name>.png
            (name = the image file's stem) and <out>/index.html. Under mpirun the ranks split the set.
            """)

    @Option(help: "Checkpoint (safetensors with netG.*).") var checkpoint: String
    @Option(help: "Folder of label maps, encoded as in training (class ids, or colours with label_encoding rgb).")
    var labels: String?
    @Option(help: "Folder of instance maps with the same file names (with --labels, for models trained with instances).")
    var instances: String?
    @Option(help: ArgumentHelp("Generate a whole split of the config's dataset, in NVlabs test.py's layout.", valueName: "train|test"))
    var phase: String?
    @Option(help: "Output folder.") var out: String
    @Option(help: "Generate only the first N samples in sorted order (NVlabs' how_many). Default: all.")
    var howMany: Int?
    @OptionGroup var configOptions: ConfigOptions

    func validate() throws {
        if let howMany, howMany < 1 { throw ValidationError("--how-many must be >= 1, got \(howMany)") }
        if (labels == nil) == (phase == nil) { throw ValidationError("give either --labels DIR or --phase train|test") }
        if let phase, !["train", "test"].contains(phase) { throw ValidationError("--phase must be train or test, got '\(phase)'") }
        if instances != nil && labels == nil { throw ValidationError("--instances goes with --labels") }
    }

    func run() throws {
        try runOnAllRanks { comm in
            if let phase {
                let n = try Generation.runPhase(checkpoint: checkpoint, configPath: configOptions.config,
                                                overrides: configOptions.overrides, phase: phase, outDir: out,
                                                howMany: howMany, comm: comm)
                print("spade-dist: rank \(comm.rank) wrote the images of \(n) samples to \(out)/images")
                if comm.rank == 0 { print("spade-dist: wrote \(out)/index.html") }
            } else if let labels {
                let n = try Generation.run(checkpoint: checkpoint, labelsDir: labels, instancesDir: instances, outDir: out,
                                           configPath: configOptions.config, overrides: configOptions.overrides,
                                           howMany: howMany, comm: comm)
                print("spade-dist: rank \(comm.rank) wrote \(n) images to \(out)")
            }
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Synthetic-data check: pixel accuracy with which generated images re-segment to their labels.",
        discussion: "Nearest class colour per pixel vs the input label map, on held-out synthetic scenes.")

    @Option(help: "Checkpoint to evaluate.") var checkpoint: String
    @Option(help: "Number of held-out synthetic scenes.") var count = 16
    @OptionGroup var configOptions: ConfigOptions

    func validate() throws {
        if count < 1 { throw ValidationError("--count must be >= 1, got \(count)") }
    }

    func run() throws {
        try reportingErrors {
            let (config, generator) = try Generation.loadGenerator(checkpoint: checkpoint, configPath: configOptions.config,
                                                                   overrides: configOptions.overrides)
            guard config.dataset_mode == "synthetic" else {
                throw ConfigError(key: "dataset_mode", "eval needs a model trained on synthetic data, got '\(config.dataset_mode)'")
            }
            let acc = Generation.syntheticAccuracy(generator: generator, config: config, count: count)
            print(String(format: "pixel accuracy %.4f on %d held-out synthetic scenes", acc, count))
        }
    }
}

struct SynthData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth-data",
        abstract: "Write a synthetic dataset in the NVlabs custom layout (train_label/, train_img/, train_inst/).")

    @Option(help: "Output folder.") var out: String
    @Option(help: "Number of scenes.") var count = 64
    @Option(help: "Image width and height.") var size = 64
    @Option(help: "Number of classes (at most 8: sky, water, grass, trees, sand, road, building, rock).") var classes = 8
    @Option(help: "Seed.") var seed: UInt64 = 0

    func validate() throws {
        if count < 1 { throw ValidationError("--count must be >= 1, got \(count)") }
        if size < 1 { throw ValidationError("--size must be >= 1, got \(size)") }
        let most = SyntheticScenes.classNames.count
        if !(3...most).contains(classes) { throw ValidationError("--classes must be in 3...\(most), got \(classes)") }
    }

    func run() throws {
        try reportingErrors {
            try writeSyntheticDataset(to: out, count: count, size: size, classes: classes, seed: seed)
            print("spade-dist: wrote \(count) synthetic scenes (\(size)x\(size), \(classes) classes) to \(out)")
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a checkpoint: step, epoch, world size, config, tensors.")
    @Argument(help: "Checkpoint path.") var path: String
    @Flag(help: "List every tensor with dtype and shape.") var tensors = false

    func run() throws {
        try reportingErrors { print(try Inspection.describe(path: path, listTensors: tensors), terminator: "") }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: 'conv' (every convolution vs the raw sgemm time of its GEMMs), 'step' (whole iterations), 'data' (decoding + preprocessing, one core).")

    @Argument(help: "conv | step | data") var what: String
    @OptionGroup var configOptions: ConfigOptions
    @Flag(help: "Machine-readable JSON output.") var json = false
    @Option(help: "Timed repetitions (median reported).") var repeats = 5

    func validate() throws {
        guard ["conv", "step", "data"].contains(what) else { throw ValidationError("unknown benchmark '\(what)' (conv, step, data)") }
        if repeats < 1 { throw ValidationError("--repeats must be >= 1, got \(repeats)") }
    }

    func run() throws {
        try reportingErrors {
            let config = try TrainConfig.load(path: configOptions.config, overrides: configOptions.overrides)
            if config.blas_threads > 0 { BLASThreads.set(config.blas_threads) }
            let model = config.modelConfig
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let header = "# \(config.name): \(model.imageHeight)x\(model.imageWidth), ngf \(model.ngf), ndf \(model.ndf), " +
                "spade_hidden \(model.spadeHidden), batch \(config.batchSize); OpenBLAS \(BLASThreads.coreName), \(BLASThreads.current) threads"
            switch what {
            case "data":
                // 256x256 synthetic PNG pairs (or the config's custom dataroot) through the real pipeline.
                let dir = config.dataset_mode == "custom" && !config.dataroot.isEmpty ? config.dataroot : nil
                let result = try benchmarkLoading(directory: dir, count: 64, size: 256, preprocessMode: config.preprocess_mode,
                                                  repeats: repeats)
                print(json ? result.json : result.description)
            case "conv":
                let rows = Benchmarks.convolutions(config: model, batch: config.batchSize, repeats: repeats)
                if json { print(String(decoding: try encoder.encode(rows), as: UTF8.self)) } else {
                    print(header); print(Benchmarks.table(rows), terminator: "")
                }
            default:
                let timing = Benchmarks.step(config: model, batch: config.batchSize, iterations: repeats)
                if json { print(String(decoding: try encoder.encode(timing), as: UTF8.self)) } else {
                    print(header)
                    print(String(format: "%.4f s/iteration, %.2f images/s (median of %d); memory: activations %.0f MiB, parameters+gradients+Adam %.0f MiB",
                                 timing.seconds_per_iteration, timing.images_per_second, timing.iterations,
                                 Double(timing.activation_bytes) / 1_048_576, Double(timing.parameter_bytes) / 1_048_576))
                }
            }
        }
    }
}
