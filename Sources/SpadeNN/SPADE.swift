import SpadeCore

/// SPADE(norm_nc): out = BN(x) * (1 + gamma(seg)) + beta(seg), with
/// a = relu(conv3x3(seg resized to x)), gamma = conv3x3(a), beta = conv3x3(a).
/// gamma and beta run as one two-head convolution (one im2col, one GEMM).
public final class SPADE {
    public let norm: BatchNorm
    public let shared: Conv2d
    /// mlp_gamma and mlp_beta stacked: output channels [gamma (C) | beta (C)].
    public let gammaBeta: Conv2d

    private var normalized: Tensor?
    private var actv: Tensor?
    private var modulation: Tensor?

    public init(_ state: ModelState, _ prefix: String, normNC: Int, labelNC: Int, hidden: Int) {
        norm = BatchNorm(state, prefix + "param_free_norm.", channels: normNC)
        // The label map is one-hot: many (label, hidden unit) weight gradients are sums of
        // products that are all exactly zero (the unit is dead wherever the label occurs).
        // The direct GEMM keeps them exactly zero, as PyTorch does; Winograd's tile transforms
        // would leave rounding noise that Adam's first step turns into +-lr moves.
        shared = Conv2d(state, prefix + "mlp_shared.0.", cin: labelNC, cout: hidden, kernel: 3, pad: 1,
                        algorithm: .im2col)
        gammaBeta = Conv2d(state, heads: [prefix + "mlp_gamma.", prefix + "mlp_beta."], cin: hidden,
                           coutEach: normNC, kernel: 3, pad: 1)
    }

    /// `seg` must already be resized to x's height and width (the caller caches
    /// one resize per resolution: every SPADE at that size uses the same one).
    public func forward(_ x: Tensor, seg: Tensor, mode: Mode, _ ctx: Context) -> Tensor {
        precondition(seg.h == x.h && seg.w == x.w && seg.n == x.n)
        // The modulation convolutions run while the replicas exchange batch statistics.
        norm.beginForward(x, mode: mode, ctx)
        let a = shared.forward(seg, mode: mode, ctx)
        Activation.relu(a)
        let gb = gammaBeta.forward(a, mode: mode, ctx)
        let n = norm.finishForward(ctx)
        let out = ctx.arena.tensor(x.n, x.c, x.h, x.w)
        let block = x.sampleSize
        for i in 0..<x.n {
            // out = n * (1 + gamma) + beta
            let nn = n.sample(i), g = gb.sample(i), b = g + block, o = out.sample(i)
            for j in 0..<block { o[j] = nn[j] * (1 + g[j]) + b[j] }
        }
        normalized = n; actv = a; modulation = gb
        return out
    }

    /// Accumulates parameter gradients and adds dL/dx into `dx`.
    public func backward(_ dy: Tensor, dx: Tensor, parameterGradients: Bool, _ ctx: Context) {
        guard let n = normalized, let a = actv, let gb = modulation else { preconditionFailure("backward before forward") }
        let arena = ctx.arena
        // d gamma = dy * n; d beta = dy; d n = dy * (1 + gamma)
        let dGB = arena.tensor(gb.n, gb.c, gb.h, gb.w)
        let dNorm = arena.tensor(dy.n, dy.c, dy.h, dy.w)
        let block = dy.sampleSize
        for i in 0..<dy.n {
            let d = dy.sample(i), nn = n.sample(i), g = gb.sample(i)
            let dg = dGB.sample(i), db = dg + block, dn = dNorm.sample(i)
            for j in 0..<block {
                dg[j] = d[j] * nn[j]
                db[j] = d[j]
                dn[j] = d[j] * (1 + g[j])
            }
        }
        // The modulation convolutions' backward runs while the replicas exchange the norm's sums.
        norm.beginBackward(dNorm, ctx)
        let dA = arena.zeroTensor(like: a)
        gammaBeta.backward(dGB, dx: dA, parameterGradients: parameterGradients, ctx)
        Activation.reluBackward(output: a, grad: dA)
        if parameterGradients { shared.backward(dA, dx: nil, parameterGradients: true, ctx) }
        norm.finishBackward(dx: dx, ctx)
    }
}
