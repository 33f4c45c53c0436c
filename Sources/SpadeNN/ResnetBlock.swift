import SpadeCore

/// SPADEResnetBlock(fin -> fout), fmid = min(fin, fout); spectral-normed convs:
///   x_s = conv_s(norm_s(x)) if fin != fout else x        (1x1, no bias, no activation)
///   dx  = conv_0(lrelu(norm_0(x)));  dx = conv_1(lrelu(norm_1(dx)));  out = x_s + dx
public final class SPADEResnetBlock {
    public let fin: Int, fout: Int
    public let learnedShortcut: Bool
    public let conv0: Conv2d, conv1: Conv2d, convS: Conv2d?
    public let norm0: SPADE, norm1: SPADE, normS: SPADE?

    private var act0: Tensor?, act1: Tensor?

    public init(_ state: ModelState, _ prefix: String, fin: Int, fout: Int, semanticNC: Int, hidden: Int) {
        self.fin = fin; self.fout = fout
        learnedShortcut = fin != fout
        let fmid = min(fin, fout)
        conv0 = Conv2d(state, prefix + "conv_0.", cin: fin, cout: fmid, kernel: 3, pad: 1, spectral: true)
        conv1 = Conv2d(state, prefix + "conv_1.", cin: fmid, cout: fout, kernel: 3, pad: 1, spectral: true)
        convS = learnedShortcut
            ? Conv2d(state, prefix + "conv_s.", cin: fin, cout: fout, kernel: 1, bias: false, spectral: true) : nil
        norm0 = SPADE(state, prefix + "norm_0.", normNC: fin, labelNC: semanticNC, hidden: hidden)
        norm1 = SPADE(state, prefix + "norm_1.", normNC: fmid, labelNC: semanticNC, hidden: hidden)
        normS = learnedShortcut ? SPADE(state, prefix + "norm_s.", normNC: fin, labelNC: semanticNC, hidden: hidden) : nil
    }

    /// `seg` is the segmap already resized to x's resolution.
    public func forward(_ x: Tensor, seg: Tensor, mode: Mode, _ ctx: Context) -> Tensor {
        let shortcut = learnedShortcut
            ? convS!.forward(normS!.forward(x, seg: seg, mode: mode, ctx), mode: mode, ctx) : x
        let a0 = norm0.forward(x, seg: seg, mode: mode, ctx)
        Activation.leakyReLU(a0)
        let h = conv0.forward(a0, mode: mode, ctx)
        let a1 = norm1.forward(h, seg: seg, mode: mode, ctx)
        Activation.leakyReLU(a1)
        let out = conv1.forward(a1, mode: mode, ctx)
        addInPlace(out, shortcut)
        act0 = a0; act1 = a1
        return out
    }

    /// Accumulates parameter gradients and adds dL/dx into `dx`.
    public func backward(_ dy: Tensor, dx: Tensor, parameterGradients: Bool, _ ctx: Context) {
        guard let a0 = act0, let a1 = act1 else { preconditionFailure("backward before forward") }
        let arena = ctx.arena
        let dA1 = arena.zeroTensor(like: a1)
        conv1.backward(dy, dx: dA1, parameterGradients: parameterGradients, ctx)
        Activation.leakyReLUBackward(output: a1, grad: dA1)
        let dH = arena.zeroTensor(dy.n, conv0.cout, dy.h, dy.w)
        norm1.backward(dA1, dx: dH, parameterGradients: parameterGradients, ctx)
        let dA0 = arena.zeroTensor(like: a0)
        conv0.backward(dH, dx: dA0, parameterGradients: parameterGradients, ctx)
        Activation.leakyReLUBackward(output: a0, grad: dA0)
        norm0.backward(dA0, dx: dx, parameterGradients: parameterGradients, ctx)
        if let convS, let normS {
            let dS = arena.zeroTensor(like: dx)
            convS.backward(dy, dx: dS, parameterGradients: parameterGradients, ctx)
            normS.backward(dS, dx: dx, parameterGradients: parameterGradients, ctx)
        } else {
            addInPlace(dx, dy)
        }
    }
}
