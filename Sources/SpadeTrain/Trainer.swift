import Foundation
import SafeTensors
import SpadeCore
import SpadeData
import SpadeDist
import SpadeNN

/// What `spade-dist train` was asked to do beyond the config.
public struct TrainOptions: Sendable {
    public var configPath: String?
    public var overrides: [String] = []
    /// "auto" (latest in the run directory, or fresh) or a checkpoint path.
    public var resume: String?
    /// Weights (and optimizer state if present) to start from at step 0.
    public var initPath: String?
    /// Total generator steps of the run (`--steps`); 0 validates and exits.
    public var steps: Int?
    public var runDir: String?
    public init() {}
}

/// A runtime failure that every rank detects at the same point (exit code 1).
public struct TrainingStopped: ExitCodeError {
    public var description: String
    public var exitCode: Int32 { 1 }
    public var sameOnAllRanks: Bool { true }
}

/// An input error found by a collective check, so identical on every rank (exit code 2).
struct CollectiveUserError: ExitCodeError {
    var description: String
    var exitCode: Int32 { 2 }
    var sameOnAllRanks: Bool { true }
}

/// The run directory cannot be used as asked (rank 0 only; exit code 2).
struct RunDirectoryError: ExitCodeError {
    var description: String
    var exitCode: Int32 { 2 }
}

/// The training program: one replica of G and D per rank, the canonical
/// iteration, gradient averaging, and rank 0's checkpoints, samples and logs.
public final class Trainer {
    public let config: TrainConfig
    let options: TrainOptions
    let comm: Communicator
    let iteration: TrainingIteration
    let sync: GradientSync
    let statistics: TimedStatisticsReducer
    let dataset: Dataset
    let batchSize: Int
    let totalSteps: Int
    let runDirectory: String
    let nanInjection: NaNGradientInjection?
    var progress = TrainingProgress()
    var loader: PrefetchingLoader?

    // Rank 0's outputs.
    var checkpoints: CheckpointDirectory?
    var metrics: MetricsLog?
    var tensorboard: TensorBoardWriter?
    var page: SamplesPage?
    var display: ProgressDisplay?
    var evalAccuracy: [Int: Float] = [:]

    var isRoot: Bool { comm.rank == 0 }

    /// Runs `spade-dist train` on this rank; errors end the whole job (runGuarded).
    public static func run(_ options: TrainOptions, communicator comm: Communicator) throws {
        // Before anything slow: a SIGTERM during start-up stops after the first step, with a checkpoint.
        StopSignal.install()
        var config = try TrainConfig.load(path: options.configPath, overrides: options.overrides)
        if let dir = options.runDir { config.run_dir = dir }
        // The effective config records the run's length (config.yaml, checkpoints).
        if let steps = options.steps, steps > 0 { config.steps = steps }
        let layout = rankLayout(comm, blasThreadsOverride: config.blas_threads > 0 ? config.blas_threads : nil)
        BLASThreads.set(layout.blasThreads)
        try checkConsistency(comm, fingerprint: config.yaml(), what: "effective config")
        let trainer = try Trainer(config: config, options: options, communicator: comm)
        if config.stall_timeout_s > 0 { comm.startStallWatchdog(timeoutSeconds: config.stall_timeout_s) }
        if trainer.isRoot {
            printLayout(comm, layout)
            print("spade-dist: BLAS kernels \(BLASThreads.coreName), \(trainer.describeModel())")
        }
        if options.steps == 0 {
            if trainer.isRoot { print("spade-dist: config and data are valid (--steps 0)") }
            return
        }
        // `print` is buffered when stdout is not a terminal while the progress display writes
        // straight to the file descriptor: flush so the start-up lines come first.
        fflush(nil)
        try trainer.train()
    }

    init(config: TrainConfig, options: TrainOptions, communicator comm: Communicator) throws {
        self.config = config
        self.options = options
        self.comm = comm
        runDirectory = config.runDirectory
        batchSize = config.batchSize

        // Data: listed on every rank, validated once on rank 0 before any work.
        var dataOptions = config.datasetOptions
        if dataOptions.datasetMode == "synthetic" { dataOptions.syntheticSize = config.crop_size }
        let globalBatch = config.batchSize * comm.size
        var problem: String? = nil
        if comm.rank == 0 {
            do {
                try validateDataset(dataOptions, globalBatch: globalBatch)
                if options.steps != 0 { try Self.checkWritable(runDirectory: config.runDirectory) }
            } catch { problem = "\(error)" }
        }
        if comm.size > 1 {
            let text = broadcastString(comm, problem ?? "")
            problem = text.isEmpty ? nil : text
        }
        if let problem { throw CollectiveUserError(description: problem) }
        dataset = try Dataset(options: dataOptions)

        // Model, identical on every rank: rank 0 initialises or loads, then broadcasts.
        statistics = TimedStatisticsReducer(comm)
        // NVlabs create_optimizers: betas (beta1, beta2) with and without TTUR; TTUR changes the lrs.
        iteration = TrainingIteration(config: config.modelConfig, beta1: config.beta1, beta2: config.beta2,
                                      context: Context(reducer: comm.size > 1 ? statistics : nil))
        sync = GradientSync(iteration: iteration, communicator: comm.size > 1 ? comm.duplicate() : comm,
                            bucketBytes: max(1, Int(config.bucket_mb * 1_048_576)),
                            sharedMemory: config.gradient_transport == "auto",
                            wire: GradientWireType(rawValue: config.gradient_dtype) ?? .float32)
        if comm.size > 1 { iteration.context.observer = sync }
        nanInjection = try NaNGradientInjection.fromEnvironment(rank: comm.rank, forwardingTo: iteration.context.observer)
        if let nanInjection { iteration.context.observer = nanInjection }
        let steps = ShardedSampler(count: dataset.count, globalBatch: globalBatch, rank: 0, worldSize: comm.size,
                                   seed: UInt64(truncatingIfNeeded: config.seed), serial: config.serial_batches).stepsPerEpoch
        totalSteps = options.steps ?? config.totalSteps(stepsPerEpoch: max(1, steps / max(config.d_steps_per_g, 1)))
        try initializeState()
        sync.shareOptimizerState(iteration)
    }

    /// Before any work, without creating anything: the run directory, or the nearest folder above
    /// it that exists, must be a directory rank 0 can write (not a file, not a read-only mount).
    static func checkWritable(runDirectory path: String) throws {
        var existing = path
        while !FileManager.default.fileExists(atPath: existing) && AtomicFile.directory(of: existing) != existing {
            existing = AtomicFile.directory(of: existing)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: existing, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw RunDirectoryError(description: "\(existing): not a directory (run_dir \(path))")
        }
        guard access(existing, W_OK) == 0 else {
            throw RunDirectoryError(description: "\(existing): cannot write here: \(String(cString: strerror(errno))) (run_dir \(path))")
        }
    }

    func describeModel() -> String {
        let g = iteration.generator.state.parameterCount, d = iteration.discriminator.state.parameterCount
        let m = config.modelConfig
        let transport = comm.size == 1 ? "" : ", " + sync.transportDescription
        return "G \(g) parameters, D \(d) parameters, images \(m.imageHeight)x\(m.imageWidth), " +
            "\(dataset.count) samples, batch \(batchSize) per rank x \(comm.size) rank(s)" + transport
    }

    // MARK: start-up state

    /// Fresh (NVlabs init from the seed), `--init` weights, or `--resume`; then rank 0's
    /// state is broadcast so every replica starts identical.
    func initializeState() throws {
        let it = iteration
        let seed = UInt64(truncatingIfNeeded: config.seed)
        it.generator.state.initializeNVlabs(seed: seed &* 2 &+ 1)
        it.discriminator.state.initializeNVlabs(seed: seed &* 2 &+ 2)
        var header = [Int64](repeating: 0, count: 4)   // step, epoch, data index, skipped
        if isRoot {
            var resumeFrom: String? = nil
            if options.resume == "auto" {
                resumeFrom = try findCheckpointToResume()
            } else if let path = options.resume {
                resumeFrom = path
            } else if options.steps != 0 {
                try refuseToOverwriteEarlierRun()
            }
            if let path = resumeFrom {
                let file = try readCheckpoint(path)
                progress = try Checkpoint.progress(file, path: path)
                _ = try Checkpoint.load(file, path: path, into: it, requireAll: true)
                print("spade-dist: resuming from \(path) at step \(progress.step)" + resumeNotes(file))
                if progress.step >= totalSteps {
                    print("spade-dist: the checkpoint is at step \(progress.step), the run has \(totalSteps) steps (--steps, " +
                          "config 'steps'): nothing to train")
                }
            } else if let path = options.initPath {
                let file = try readCheckpoint(path)
                let loaded = try Checkpoint.load(file, path: path, into: it)
                var notes: [String] = []
                if !loaded.discriminatorLoaded { notes.append("no netD.* tensors: discriminator initialised fresh") }
                if !loaded.optimizerGLoaded { notes.append("no optG.*: generator optimizer starts fresh") }
                if !loaded.optimizerDLoaded { notes.append("no optD.*: discriminator optimizer starts fresh") }
                if !loaded.ignoredTensors.isEmpty { notes.append("\(loaded.ignoredTensors.count) tensors not used (e.g. \(loaded.ignoredTensors[0]))") }
                print("spade-dist: initialised from \(path)" + (notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")))
            } else if options.resume == "auto" {
                print("spade-dist: no checkpoint in \(runDirectory)/checkpoints, starting fresh")
            }
            header = [Int64(progress.step), Int64(progress.epoch), Int64(progress.dataIndex), Int64(progress.skippedSteps)]
        }
        guard comm.size > 1 else { return }
        // Every rank must agree whether rank 0 failed: a failed load throws on rank 0 only,
        // and runGuarded aborts the job. Broadcast state.
        header = comm.broadcast(header, root: 0)
        progress = TrainingProgress(step: Int(header[0]), epoch: Int(header[1]), dataIndex: Int(header[2]),
                                    skippedSteps: Int(header[3]))
        var tensors: [(name: String, buffer: UnsafeMutableRawBufferPointer)] = []
        for (net, state, adam) in [("netG", it.generator.state, it.adamG), ("netD", it.discriminator.state, it.adamD)] {
            tensors.append(("\(net).parameters", UnsafeMutableRawBufferPointer(state.valueBuffer)))
            tensors.append(("\(net).buffers", UnsafeMutableRawBufferPointer(state.floatBuffers)))
            tensors.append(("\(net).exp_avg", UnsafeMutableRawBufferPointer(start: adam.expAvg, count: adam.count * 4)))
            tensors.append(("\(net).exp_avg_sq", UnsafeMutableRawBufferPointer(start: adam.expAvgSq, count: adam.count * 4)))
        }
        try broadcastParameters(comm, tensors: tensors)
        for (state, adam) in [(it.generator.state, it.adamG), (it.discriminator.state, it.adamD)] {
            state.counters = comm.broadcast(state.counters, root: 0)
            adam.step = comm.broadcast([adam.step], root: 0)[0]
        }
    }

    /// `--resume auto`: `latest`'s target, else the newest complete step file (with a note), nil
    /// when the run directory has no checkpoint; only damaged ones is an error, not a fresh start.
    func findCheckpointToResume() throws -> String? {
        let dir = CheckpointDirectory(runDirectory: runDirectory, keep: config.keep_checkpoints)
        let found = dir.latestCheckpoint()
        if let found, let target = dir.latestTarget(), (target as NSString).standardizingPath != (found as NSString).standardizingPath {
            print("spade-dist: \(dir.latestPath) -> \((target as NSString).lastPathComponent) is missing or incomplete; " +
                  "using the newest complete checkpoint")
        }
        if found == nil, let newest = dir.stepFiles().last {
            throw CheckpointError(path: newest.path, "incomplete or damaged, and \(dir.directory) holds no complete " +
                "checkpoint to resume (delete the directory to start afresh)")
        }
        return found
    }

    /// A fresh start (no `--resume`) in a run directory that already holds checkpoints would mix
    /// two runs (rotation, `latest`, metrics.jsonl, samples): refuse, like an existing output dir.
    func refuseToOverwriteEarlierRun() throws {
        let dir = CheckpointDirectory(runDirectory: runDirectory, keep: config.keep_checkpoints)
        guard let newest = dir.stepFiles().last else { return }
        throw RunDirectoryError(description: "\(dir.directory) already holds checkpoints of an earlier run (newest " +
            "\((newest.path as NSString).lastPathComponent)): continue it with --resume auto, or start a new run " +
            "with another --run-dir (or delete that directory)")
    }

    /// "; world size 2 -> 1; config differs from the checkpoint's: lr 0.0002 -> 0.0001" (or "").
    func resumeNotes(_ file: SafeTensorsFile) -> String {
        var notes: [String] = []
        if let ws = file.metadata["world_size"].flatMap(Int.init), ws != comm.size {
            notes.append("world size \(ws) -> \(comm.size) (the data position is in global samples, so the sample order continues)")
        }
        if let yaml = file.metadata["config"], let old = try? TrainConfig.parse(yaml: yaml) {
            let ignored: Set<String> = ["steps", "run_dir"]
            let changed = TrainConfig.keys.filter { !ignored.contains($0.name) }.compactMap { spec -> String? in
                let a = old.value(of: spec.name), b = config.value(of: spec.name)
                return a == b ? nil : "\(spec.name) \(a.map { "\($0)" } ?? "?") -> \(b.map { "\($0)" } ?? "?")"
            }
            if !changed.isEmpty { notes.append("config differs from the checkpoint's: " + changed.joined(separator: ", ")) }
        }
        return notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")
    }

    func readCheckpoint(_ path: String) throws -> SafeTensorsFile { try Checkpoint.read(path: path) }

    // MARK: the loop

    func train() throws {
        let it = iteration
        let globalBatch = batchSize * comm.size
        let sampler = ShardedSampler(count: dataset.count, globalBatch: globalBatch, rank: comm.rank, worldSize: comm.size,
                                     seed: UInt64(truncatingIfNeeded: config.seed), serial: config.serial_batches,
                                     start: SamplerPosition(epoch: progress.epoch, index: progress.dataIndex))
        let loader = PrefetchingLoader(dataset: dataset, sampler: sampler)
        self.loader = loader
        defer { loader.stop() }
        if isRoot { try openOutputs() }
        StopSignal.install()
        let dSteps = max(config.d_steps_per_g, 1)
        var statusBuffer = [Double](repeating: 0, count: 8)
        var lastCheckpointStep = progress.step
        var consecutiveSkips = 0

        while progress.step < totalSteps {
            let stepStart = monotonicSeconds()
            var dataWait = 0.0, commWait = 0.0, commPoll = 0.0
            var syncTime = -statistics.seconds
            var nonFinite = false
            // k-1 discriminator-only iterations on fresh batches, then the full one.
            var losses = GANLosses()
            var lastBatch: Batch? = nil
            let step = progress.step + 1
            nanInjection?.begin(step: step)
            for k in 0..<dSteps {
                let generatorStep = k == dSteps - 1
                comm.reportProgress(.loadingData, step: step)
                let batch = try loader.next()
                dataWait += loader.lastWaitSeconds
                let (lrG, lrD) = config.learningRates(epoch: batch.epoch + 1)
                sync.discriminator.beginStep()
                if generatorStep { sync.generator.beginStep() }
                comm.reportProgress(.forwardBackward, step: step)
                losses = it.computeGradients(semantics: batch.semantics, image: batch.image, batch: batch.batchSize,
                                             generatorStep: generatorStep)
                comm.reportProgress(.gradientReduction, step: step)
                let dStats = sync.discriminator.finish()
                commWait += dStats.commWaitSeconds
                commPoll += dStats.pollSeconds
                var finite = dStats.allFinite && losses.lossD.isFinite
                if generatorStep {
                    let gStats = sync.generator.finish()
                    commWait += gStats.commWaitSeconds
                    commPoll += gStats.pollSeconds
                    finite = finite && gStats.allFinite && losses.lossG.isFinite
                }
                if comm.size == 1 && !finite { nonFinite = true }
                // One small collective per iteration: losses for the log, the non-finite
                // flag and the stop request, identical on all ranks.
                if comm.size > 1 {
                    comm.reportProgress(.statusExchange, step: step)
                    statusBuffer = [losses.dFake, losses.dReal, losses.gGAN, losses.gGANFeat,
                                    finite ? 0 : 1, StopSignal.requested ? 1 : 0, 0, 0]
                    let t0 = monotonicSeconds()
                    statusBuffer.withUnsafeMutableBufferPointer { comm.deterministicAllReduceSum($0) }
                    syncTime += monotonicSeconds() - t0
                    let n = Double(comm.size)
                    losses.dFake = statusBuffer[0] / n; losses.dReal = statusBuffer[1] / n
                    losses.gGAN = statusBuffer[2] / n; losses.gGANFeat = statusBuffer[3] / n
                    nonFinite = statusBuffer[4] > 0
                } else {
                    statusBuffer[5] = StopSignal.requested ? 1 : 0
                }
                if nonFinite { break }
                comm.reportProgress(.optimizerUpdate, step: step)
                it.applyUpdates(lrG: Double(lrG), lrD: Double(lrD), generatorStep: generatorStep, replicas: comm.size,
                                gradientPartsG: sync.generator.summands?.map { UnsafePointer($0) },
                                gradientPartsD: sync.discriminator.summands?.map { UnsafePointer($0) },
                                rangesG: sync.updateRangesG, rangesD: sync.updateRangesD)
                commWait += sync.updatesApplied()
                lastBatch = batch
            }
            let position = loader.position
            progress.epoch = position.epoch
            progress.dataIndex = position.index
            progress.step += 1
            // Every rank took the same verdict from the status exchange, so every rank skips, counts
            // and gives up at the same step (exit 1 on all; the last checkpoint is left as it was).
            var giveUp: String? = nil
            if nonFinite {
                progress.skippedSteps += 1
                consecutiveSkips += 1
                let message = "non-finite loss or gradient at step \(progress.step)"
                if config.on_nonfinite == "stop" {
                    giveUp = message + " (on_nonfinite: stop)"
                } else if config.max_skipped_steps > 0 && consecutiveSkips >= config.max_skipped_steps {
                    giveUp = message + ": \(consecutiveSkips) steps in a row skipped (max_skipped_steps \(config.max_skipped_steps)); " +
                        "stopping with the last checkpoint (step \(lastCheckpointStep)) as it was"
                } else if isRoot {
                    display?.message("spade-dist: \(message): step skipped (\(progress.skippedSteps) so far)")
                }
            } else {
                consecutiveSkips = 0
            }
            if config.drift_check_every > 0 && progress.step % config.drift_check_every == 0 && comm.size > 1 {
                comm.reportProgress(.replicaCheck, step: step)
                try checkReplicas()
            }
            let stopRequested = statusBuffer[5] > 0
            if isRoot {
                let elapsed = monotonicSeconds() - stepStart
                // With several ranks: time in blocking collectives (batch-norm statistics, status; mostly
                // waiting for the slowest rank) and in poll() during backward (the reductions' own work).
                syncTime += statistics.seconds
                let timing: [String: Float] = comm.size > 1 ? ["sync_s": Float(syncTime), "comm_poll_s": Float(commPoll)] : [:]
                try rootDuties(losses: losses, batch: lastBatch, elapsed: elapsed, dataWait: dataWait, commWait: commWait,
                               imagesThisStep: globalBatch * dSteps, skipped: nonFinite, extras: timing)
            }
            // checkpoint_every 0: only at the end of the run (or on a stop request). Every rank
            // takes part (the optimizer's state may be spread over the nodes); rank 0 writes.
            let due = config.checkpoint_every > 0 && progress.step % config.checkpoint_every == 0
            if giveUp == nil && (due || progress.step == totalSteps || stopRequested) {
                comm.reportProgress(.checkpointing, step: step)
                try saveCheckpoint()
                lastCheckpointStep = progress.step
            }
            if let giveUp { throw TrainingStopped(description: giveUp) }
            if stopRequested {
                if isRoot { display?.message("spade-dist: stop requested (signal); checkpoint at step \(progress.step) written, exiting") }
                break
            }
        }
        comm.reportProgress(.finishing, step: progress.step)
        if lastCheckpointStep != progress.step { try saveCheckpoint() }
        if isRoot {
            display?.finish()
            try metrics?.close()
            print("spade-dist: done at step \(progress.step); run directory \(runDirectory)")
        }
        try dumpReplicaIfRequested()
        comm.barrier()
    }

    /// Debugging aid (docs/distributed.md): with SPADE_DIST_REPLICA_DUMP=DIR every rank writes its
    /// own final state (parameters, buffers, Adam moments) to DIR/rank_<r>.safetensors, so tests can
    /// check that replicas are bitwise identical. Not a checkpoint (no rotation, no `latest`).
    func dumpReplicaIfRequested() throws {
        guard let dir = ProcessInfo.processInfo.environment["SPADE_DIST_REPLICA_DUMP"], !dir.isEmpty else { return }
        try AtomicFile.createDirectory(dir)
        let file = Checkpoint.make(iteration, progress: progress, config: config, worldSize: comm.size)
        try AtomicFile.write(file.serialized(), to: "\(dir)/rank_\(comm.rank).safetensors")
    }

    func checkReplicas() throws {
        let g = iteration.generator.state, d = iteration.discriminator.state
        try checkReplicasIdentical(comm, step: progress.step, tensors: [
            ("netG.parameters", UnsafeRawBufferPointer(g.valueBuffer)), ("netG.buffers", UnsafeRawBufferPointer(g.floatBuffers)),
            ("netD.parameters", UnsafeRawBufferPointer(d.valueBuffer)), ("netD.buffers", UnsafeRawBufferPointer(d.floatBuffers)),
        ])
    }

    // MARK: rank 0

    func openOutputs() throws {
        try AtomicFile.createDirectory(runDirectory)
        try AtomicFile.write(config.yaml(), to: runDirectory + "/config.yaml")
        checkpoints = CheckpointDirectory(runDirectory: runDirectory, keep: config.keep_checkpoints)
        metrics = try MetricsLog(path: runDirectory + "/metrics.jsonl", keepingUpToStep: progress.step)
        tensorboard = try TensorBoardWriter(directory: runDirectory)
        page = SamplesPage(runDirectory: runDirectory, title: "spade-dist: \(config.name)")
        if progress.step > 0 {
            // Resumed: what an interrupted run logged after its checkpoint is redone. TensorBoard
            // drops older events at steps >= this one (as PyTorch's SummaryWriter(purge_step:)).
            try tensorboard?.addSessionStart(step: progress.step + 1)
            for step in page!.sampleSteps() where step > progress.step {
                try? FileManager.default.removeItem(atPath: page!.samplePath(step: step))
            }
        }
        display = ProgressDisplay(totalSteps: totalSteps, startStep: progress.step,
                                  imagesPerStep: batchSize * comm.size * max(config.d_steps_per_g, 1))
    }

    func rootDuties(losses: GANLosses, batch: Batch?, elapsed: Double, dataWait: Double, commWait: Double,
                    imagesThisStep: Int, skipped: Bool = false, extras: [String: Float] = [:]) throws {
        let step = progress.step
        display?.update(step: step, epoch: progress.epoch, lossD: Float(losses.lossD), lossG: Float(losses.lossG))
        // A skipped step is always logged, marked `skipped: 1`.
        if step % max(config.log_every, 1) == 0 || step == 1 || step == totalSteps || skipped {
            var r = MetricsRecord(step: step, epoch: progress.epoch)
            r.loss_D = Float(losses.lossD); r.loss_G = Float(losses.lossG)
            r.D_Fake = Float(losses.dFake); r.D_real = Float(losses.dReal)
            r.G_GAN = Float(losses.gGAN); r.G_GANFeat = Float(losses.gGANFeat)
            let (lrG, lrD) = config.learningRates(epoch: progress.epoch + 1)
            r.lr_G = lrG; r.lr_D = lrD
            r.images_per_s = Float(Double(imagesThisStep) / max(elapsed, 1e-9))
            r.data_wait_s = Float(dataWait); r.comm_wait_s = Float(commWait)
            if progress.skippedSteps > 0 { r.extras["skipped_steps"] = Float(progress.skippedSteps) }
            if skipped { r.extras["skipped"] = 1 }
            r.extras.merge(extras) { $1 }
            try metrics?.append(r)
            try tensorboard?.addScalars(MetricsRecord.floatKeys.compactMap { k in r[k].map { (k, $0) } }, step: step)
        }
        if let batch, config.sample_every > 0 && (step % config.sample_every == 0 || step == totalSteps) {
            try writeSamples(batch)
        }
    }

    /// Eval-mode generator on the current batch (no collective), grid label | generated | real.
    func writeSamples(_ batch: Batch) throws {
        let n = min(config.num_samples, batch.batchSize)
        guard n > 0, let page else { return }
        let h = batch.height, w = batch.width, nc = batch.semanticNC
        let fake = iteration.generator.synthesize(Array(batch.semantics[0..<(n * nc * h * w)]), batch: n, height: h, width: w)
        let grid = SampleGrid.make(labels: batch.labels, fake: fake, real: batch.image, count: n, height: h, width: w,
                                   dontcare: config.contain_dontcare_label ? Int32(config.label_nc) : nil)
        let png = try encodePNG(width: grid.width, height: grid.height, channels: 3, pixels: grid.pixels)
        let path = page.samplePath(step: progress.step)
        try AtomicFile.createDirectory(runDirectory + "/samples")
        try AtomicFile.write(png, to: path)
        try tensorboard?.addImage("samples", png: png, width: grid.width, height: grid.height, step: progress.step)
        if config.dataset_mode == "synthetic" {
            var acc = 0.0
            for i in 0..<n {
                acc += resegmentationAccuracy(image: Array(fake[(i * 3 * h * w)..<((i + 1) * 3 * h * w)]),
                                              labels: Array(batch.labels[(i * h * w)..<((i + 1) * h * w)]),
                                              height: h, width: w, classes: config.label_nc)
            }
            evalAccuracy[progress.step] = Float(acc / Double(n))
        }
        try page.write(metrics: (try? MetricsLog.read(path: runDirectory + "/metrics.jsonl")) ?? [], evalAccuracy: evalAccuracy)
    }

    /// Collective (the optimizer's state may be spread over the nodes); rank 0 writes.
    func saveCheckpoint() throws {
        sync.gatherOptimizerState(iteration)
        guard let checkpoints else { return }
        let file = Checkpoint.make(iteration, progress: progress, config: config, worldSize: comm.size)
        try metrics?.sync()
        _ = try checkpoints.save(file, step: progress.step)   // also rotates
    }
}

/// The sample image: one row per sample, columns colourized labels | generated | real.
public enum SampleGrid {
    public static func make(labels: [Int32], fake: [Float], real: [Float], count n: Int, height h: Int, width w: Int,
                            dontcare: Int32?) -> (pixels: [UInt8], width: Int, height: Int) {
        let gw = 3 * w, gh = n * h
        var px = [UInt8](repeating: 0, count: gw * gh * 3)
        for i in 0..<n {
            let colors = colorize(Array(labels[(i * h * w)..<((i + 1) * h * w)]), dontcare: dontcare)
            for y in 0..<h {
                for x in 0..<w {
                    let row = (i * h + y) * gw
                    for c in 0..<3 {
                        px[(row + x) * 3 + c] = colors[(y * w + x) * 3 + c]
                        px[(row + w + x) * 3 + c] = Generation.byte(fake[((i * 3 + c) * h + y) * w + x])
                        px[(row + 2 * w + x) * 3 + c] = Generation.byte(real[((i * 3 + c) * h + y) * w + x])
                    }
                }
            }
        }
        return (px, gw, gh)
    }
}

/// Rank 0's string on every rank (length first, then the bytes).
func broadcastString(_ comm: Communicator, _ s: String) -> String {
    let bytes = Array(s.utf8)
    let count = comm.broadcast([Int64(bytes.count)], root: 0)[0]
    var buf = comm.rank == 0 ? bytes : [UInt8](repeating: 0, count: Int(count))
    buf = comm.broadcast(buf, root: 0)
    return String(decoding: buf, as: UTF8.self)
}
