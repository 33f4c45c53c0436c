import SpadeCore

/// PatchGAN NLayerDiscriminator (kernel 4, padding 2):
///   model0:        conv(in -> ndf, s2, bias) + lrelu
///   model1..n-1:   SNconv(no bias) + instance norm + lrelu, nf = min(2nf, 512), last of them stride 1
///   model_n:       conv(nf -> 1, s1, bias)
/// Returns every layer's output (feature matching uses all but the last).
public final class NLayerDiscriminator {
    public let convs: [Conv2d]
    private let norms: [InstanceNorm?]
    private var outputs: [Tensor] = []

    public init(_ state: ModelState, _ prefix: String, inputNC: Int, ndf: Int, layers n: Int) {
        var convs: [Conv2d] = [Conv2d(state, prefix + "model0.0.", cin: inputNC, cout: ndf, kernel: 4, stride: 2, pad: 2)]
        var norms: [InstanceNorm?] = [nil]
        var nf = ndf
        for k in 1..<max(n, 1) {
            let prev = nf
            nf = min(2 * nf, 512)
            convs.append(Conv2d(state, prefix + "model\(k).0.0.", cin: prev, cout: nf, kernel: 4,
                                stride: k == n - 1 ? 1 : 2, pad: 2, bias: false, spectral: true))
            norms.append(InstanceNorm())
        }
        convs.append(Conv2d(state, prefix + "model\(n).0.", cin: nf, cout: 1, kernel: 4, stride: 1, pad: 2))
        norms.append(nil)
        self.convs = convs
        self.norms = norms
    }

    public func forward(_ x: Tensor, mode: Mode, _ ctx: Context) -> [Tensor] {
        outputs.removeAll(keepingCapacity: true)
        var h = x
        for (k, conv) in convs.enumerated() {
            h = conv.forward(h, mode: mode, ctx)
            if let norm = norms[k] {
                h = Activation.leakyReLU(norm.forward(h, ctx), ctx)   // the norm keeps its output as xhat
            } else if k < convs.count - 1 {
                Activation.leakyReLU(h)
            }
            outputs.append(h)
        }
        return outputs
    }

    /// Backward over the first `douts[...].n` samples. `douts[k]` is dL/d(output k) or nil.
    /// Returns dL/dx if `inputGradient`, else nil.
    public func backward(_ douts: [Tensor?], samples: Int, parameterGradients: Bool, inputGradient: Bool,
                         inputShape x: Tensor, _ ctx: Context) -> Tensor? {
        let arena = ctx.arena
        var d: Tensor? = nil   // gradient w.r.t. the output of layer k (post-activation)
        for k in stride(from: convs.count - 1, through: 0, by: -1) {
            let out = outputs[k].prefix(samples: samples)
            if let extra = douts[k] {
                if let cur = d { addInPlace(cur, extra) } else {
                    let copy = arena.tensor(out.n, out.c, out.h, out.w)
                    copy.data.update(from: extra.data, count: extra.count)
                    d = copy
                }
            }
            guard let grad = d else { continue }
            if k < convs.count - 1 { Activation.leakyReLUBackward(output: out, grad: grad) }
            var dConv = grad
            if let norm = norms[k] {
                dConv = arena.zeroTensor(like: grad)
                norm.backward(grad, dx: dConv, ctx)
            }
            let needDx = k > 0 || inputGradient
            let inShape = k > 0 ? outputs[k - 1] : x
            let dx = needDx ? arena.zeroTensor(samples, inShape.c, inShape.h, inShape.w) : nil
            convs[k].backward(dConv, dx: dx, parameterGradients: parameterGradients, ctx)
            d = dx
        }
        return inputGradient ? d : nil
    }
}

/// num_D NLayerDiscriminators; scale k+1 sees avg_pool(3,2,1) of scale k's input.
public final class MultiscaleDiscriminator {
    public let config: ModelConfig
    public let state = ModelState()
    public let scales: [NLayerDiscriminator]
    private var scaleInputs: [Tensor] = []

    public init(_ config: ModelConfig) {
        self.config = config
        let state = self.state
        scales = (0..<config.numD).map {
            NLayerDiscriminator(state, "discriminator_\($0).", inputNC: config.semanticNC + 3,
                                ndf: config.ndf, layers: config.nLayersD)
        }
        state.finalize()
    }

    /// outputs[scale][layer], each (N, C, h, w).
    public func forward(_ x: Tensor, mode: Mode, _ ctx: Context) -> [[Tensor]] {
        scaleInputs.removeAll(keepingCapacity: true)
        var input = x
        var result: [[Tensor]] = []
        for (i, d) in scales.enumerated() {
            scaleInputs.append(input)
            result.append(d.forward(input, mode: mode, ctx))
            if i + 1 < scales.count { input = Resample.avgPool(input, ctx) }
        }
        return result
    }

    /// Backward over the first `samples` samples of the last forward. Returns dL/dinput if requested.
    public func backward(_ douts: [[Tensor?]], samples: Int, parameterGradients: Bool, inputGradient: Bool,
                         _ ctx: Context) -> Tensor? {
        var carry: Tensor? = nil   // gradient w.r.t. scale i's input coming from scales > i
        for i in stride(from: scales.count - 1, through: 0, by: -1) {
            let dx = scales[i].backward(douts[i], samples: samples, parameterGradients: parameterGradients,
                                        inputGradient: inputGradient, inputShape: scaleInputs[i], ctx)
            guard inputGradient, let dx else { continue }
            if let c = carry { addInPlace(dx, c) }
            if i > 0 {
                let prev = scaleInputs[i - 1]
                let dPrev = ctx.arena.zeroTensor(samples, prev.c, prev.h, prev.w)
                Resample.avgPoolBackward(dx, dx: dPrev)
                carry = dPrev
            } else {
                carry = dx
            }
        }
        return carry
    }
}

extension MultiscaleDiscriminator {
    /// Every convolution of every scale, in forward order.
    public var convLayers: [Conv2d] { scales.flatMap(\.convs) }
}
