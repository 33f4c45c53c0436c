import SpadeCore

/// SPADEGenerator without VAE:
///   x = fc(resize(seg, sh x sw)); head_0; up; G_middle_0; [up]; G_middle_1;
///   (up; up_i) for i in 0..3 [and up_4 for 'most']; fake = tanh(conv_img(lrelu(x))).
public final class SPADEGenerator {
    public let config: ModelConfig
    public let state = ModelState()
    public let fc: Conv2d
    public let blocks: [(name: String, block: SPADEResnetBlock, upsampleBefore: Bool)]
    public let convImg: Conv2d

    // Saved by forward.
    private var segCache: [Tensor] = []
    private var blockInputs: [Tensor] = []
    private var preUpsample: [Tensor?] = []
    private var finalAct: Tensor?
    private var fake: Tensor?

    public init(_ config: ModelConfig) {
        self.config = config
        let state = self.state
        let nf = config.ngf, nc = config.semanticNC, nh = config.spadeHidden
        fc = Conv2d(state, "fc.", cin: nc, cout: 16 * nf, kernel: 3, pad: 1, algorithm: .im2col)  // one-hot input: see SPADE.shared
        var specs: [(String, Int, Int, Bool)] = [
            ("head_0", 16 * nf, 16 * nf, false),
            ("G_middle_0", 16 * nf, 16 * nf, true),
            ("G_middle_1", 16 * nf, 16 * nf, config.upsampling != .normal),
            ("up_0", 16 * nf, 8 * nf, true),
            ("up_1", 8 * nf, 4 * nf, true),
            ("up_2", 4 * nf, 2 * nf, true),
            ("up_3", 2 * nf, nf, true),
        ]
        if config.upsampling == .most { specs.append(("up_4", nf, nf / 2, true)) }
        blocks = specs.map { name, fin, fout, up in
            (name, SPADEResnetBlock(state, name + ".", fin: fin, fout: fout, semanticNC: nc, hidden: nh), up)
        }
        convImg = Conv2d(state, "conv_img.", cin: specs.last!.2, cout: 3, kernel: 3, pad: 1)
        state.finalize()
    }

    /// The segmap resized to (h, w), computed once per resolution per forward.
    private func seg(_ seg: Tensor, h: Int, w: Int, _ ctx: Context) -> Tensor {
        if let t = segCache.first(where: { $0.h == h && $0.w == w }) { return t }
        let t = (seg.h == h && seg.w == w) ? seg : Resample.nearest(seg, h: h, w: w, ctx)
        segCache.append(t)
        return t
    }

    /// Eval mode (running statistics, stored spectral-norm vectors) on plain floats: `batch`
    /// semantic maps (batch, semanticNC, height, width) -> generated images (batch, 3, height, width).
    public func synthesize(_ semantics: [Float], batch: Int, height: Int, width: Int) -> [Float] {
        let ctx = Context()
        let seg = ctx.arena.tensor(batch, config.semanticNC, height, width)
        seg.copy(from: semantics)
        return forward(seg, mode: .eval, ctx).toArray()
    }

    /// fake = G(seg), (N, 3, H, W). `activations` (if given) receives the block outputs by name.
    public func forward(_ segmap: Tensor, mode: Mode, _ ctx: Context,
                        activations: ((String, Tensor) -> Void)? = nil) -> Tensor {
        precondition(segmap.c == config.semanticNC, "generator expects \(config.semanticNC) semantic channels, got \(segmap.c)")
        segCache.removeAll(keepingCapacity: true)
        blockInputs.removeAll(keepingCapacity: true)
        preUpsample.removeAll(keepingCapacity: true)
        let small = seg(segmap, h: config.sh, w: config.sw, ctx)
        activations?("seg_small", small)
        var x = fc.forward(small, mode: mode, ctx)
        activations?("fc", x)
        for (name, block, up) in blocks {
            if up {
                preUpsample.append(x)
                x = Resample.nearest(x, h: 2 * x.h, w: 2 * x.w, ctx)
            } else {
                preUpsample.append(nil)
            }
            blockInputs.append(x)
            x = block.forward(x, seg: seg(segmap, h: x.h, w: x.w, ctx), mode: mode, ctx)
            activations?(name, x)
        }
        Activation.leakyReLU(x)
        finalAct = x
        let y = convImg.forward(x, mode: mode, ctx)
        activations?("conv_img", y)
        Activation.tanh(y)
        fake = y
        return y
    }

    /// Accumulates dL/dparams for dL/dfake (no gradient w.r.t. the segmap).
    public func backward(_ dFake: Tensor, _ ctx: Context) {
        guard let fake, let finalAct else { preconditionFailure("backward before forward") }
        let arena = ctx.arena
        let dY = Activation.tanhBackward(output: fake, grad: dFake, ctx)
        var dX = arena.zeroTensor(like: finalAct)
        convImg.backward(dY, dx: dX, parameterGradients: true, ctx)
        Activation.leakyReLUBackward(output: finalAct, grad: dX)
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            let input = blockInputs[i]
            let dIn = arena.zeroTensor(like: input)
            blocks[i].block.backward(dX, dx: dIn, parameterGradients: true, ctx)
            if let pre = preUpsample[i] {
                let dPre = arena.zeroTensor(like: pre)
                Resample.nearestBackward(dIn, dx: dPre)
                dX = dPre
            } else {
                dX = dIn
            }
        }
        fc.backward(dX, dx: nil, parameterGradients: true, ctx)
    }
}

extension SPADEResnetBlock {
    /// Every convolution of the block, in forward order.
    public var convLayers: [Conv2d] {
        var layers: [Conv2d] = []
        for norm in [normS, norm0].compactMap({ $0 }) { layers += [norm.shared, norm.gammaBeta] }
        if let convS { layers.append(convS) }
        layers.append(conv0)
        layers += [norm1.shared, norm1.gammaBeta, conv1]
        return layers
    }
}

extension SPADEGenerator {
    /// Every convolution of the generator, in forward order.
    public var convLayers: [Conv2d] { [fc] + blocks.flatMap { $0.block.convLayers } + [convImg] }
}
