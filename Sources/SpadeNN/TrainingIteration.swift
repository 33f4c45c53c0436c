import SpadeCore

/// The canonical SPADE training iteration (DESIGN.md §2), one process's part of it:
///   fake = G(S) (train mode); outs = D([S, fake ; S, X]) in ONE forward, fake half first;
///   loss_D and loss_G from those outputs; D grads from loss_D; G grads through D's input
///   gradient (fake half only, no D parameter gradients); then Adam on both.
/// Gradients are summed across replicas between `computeGradients` and `applyUpdates`,
/// through the context's observer (the trainer wires it); `applyUpdates` averages.
public final class TrainingIteration {
    public let config: ModelConfig
    public let generator: SPADEGenerator
    public let discriminator: MultiscaleDiscriminator
    public let adamG: Adam, adamD: Adam
    public let context: Context

    /// Results of the last `computeGradients`, kept for tests and sample images.
    public private(set) var lastFake: Tensor?
    public private(set) var lastDFake: Tensor?
    public private(set) var lastOutputs: [[Tensor]] = []

    public init(config: ModelConfig, beta1: Double = 0, beta2: Double = 0.9, context: Context = Context()) {
        self.config = config
        generator = SPADEGenerator(config)
        discriminator = MultiscaleDiscriminator(config)
        adamG = Adam(count: generator.state.parameterCount, beta1: beta1, beta2: beta2)
        adamD = Adam(count: discriminator.state.parameterCount, beta1: beta1, beta2: beta2)
        self.context = context
    }

    /// Runs forward and backward for one batch; gradients are this batch's alone (parameters
    /// that get none are zeroed). `semantics` (B, semanticNC, H, W) and `image` (B, 3, H, W)
    /// are NCHW arrays. With `generatorStep: false` (the extra
    /// discriminator steps of d_steps_per_g), only D's gradients are computed.
    public func computeGradients(semantics: [Float], image: [Float], batch b: Int,
                                 generatorStep: Bool = true) -> GANLosses {
        let ctx = context, arena = ctx.arena
        let nc = config.semanticNC, h = config.imageHeight, w = config.imageWidth
        precondition(semantics.count == b * nc * h * w && image.count == b * 3 * h * w,
                     "batch of \(b) at \(h)x\(w) with \(nc) semantic channels expected")
        arena.reset()
        generator.state.beginGradients()
        discriminator.state.beginGradients()
        defer {
            generator.state.finishGradients()
            discriminator.state.finishGradients()
        }
        let seg = arena.tensor(b, nc, h, w); seg.copy(from: semantics)
        let real = arena.tensor(b, 3, h, w); real.copy(from: image)

        let fake = generator.forward(seg, mode: .train, ctx)

        // D input: [cat(S, fake); cat(S, real)] along the batch, fake half first.
        let dIn = arena.tensor(2 * b, nc + 3, h, w)
        let plane = h * w
        for i in 0..<b {
            for (slot, img) in [(i, fake), (b + i, real)] {
                let dst = dIn.sample(slot)
                dst.update(from: seg.sample(i), count: nc * plane)
                (dst + nc * plane).update(from: img.sample(i), count: 3 * plane)
            }
        }
        let outputs = discriminator.forward(dIn, mode: .train, ctx)
        let (losses, grads) = GANLoss.compute(outputs: outputs, fakeCount: b, mode: config.ganMode,
                                              lambdaFeat: config.lambdaFeat,
                                              featureMatching: config.ganFeatLoss, ctx)
        // D parameter gradients from loss_D over all 2B samples; no input gradient needed.
        _ = discriminator.backward(grads.lossD, samples: 2 * b, parameterGradients: true, inputGradient: false, ctx)
        lastFake = fake
        lastOutputs = outputs
        lastDFake = nil
        guard generatorStep else { return losses }

        // loss_G through D's input gradient, fake half only, no D parameter gradients.
        let dInput = discriminator.backward(grads.lossG, samples: b, parameterGradients: false, inputGradient: true, ctx)!
        let dFake = arena.tensor(b, 3, h, w)
        for i in 0..<b { dFake.sample(i).update(from: dInput.sample(i) + nc * plane, count: 3 * plane) }
        generator.backward(dFake, ctx)
        lastDFake = dFake
        return losses
    }

    /// Adam steps with the gradients summed over `replicas` data-parallel replicas (one process:
    /// this batch's own); Adam divides by `replicas`, i.e. steps with the average. The sums are
    /// in the networks' gradient buffers, unless `gradientPartsG` / `gradientPartsD` give the
    /// replicas' gradients (same layout) for Adam to add in order.
    /// `rangesG` / `rangesD` (default: all) restrict the update to this replica's shard of the
    /// optimizer (parameters and moments shared by the replicas, each updating its part).
    public func applyUpdates(lrG: Double, lrD: Double, generatorStep: Bool = true, replicas: Int = 1,
                             gradientPartsG: [UnsafePointer<Float>]? = nil, gradientPartsD: [UnsafePointer<Float>]? = nil,
                             rangesG: [Range<Int>]? = nil, rangesD: [Range<Int>]? = nil) {
        let d = discriminator.state
        adamD.update(parameters: d.values, gradientParts: gradientPartsD ?? [UnsafePointer(d.grads)], replicas: replicas,
                     lr: lrD, ranges: rangesD)
        if generatorStep {
            let g = generator.state
            adamG.update(parameters: g.values, gradientParts: gradientPartsG ?? [UnsafePointer(g.grads)], replicas: replicas,
                         lr: lrG, ranges: rangesG)
        }
    }
}
