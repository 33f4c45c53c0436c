import SpadeCore

/// SPADE(norm_nc): out = BN(x) * (1 + gamma(seg)) + beta(seg), with
/// a = relu(conv3x3(seg resized to x)), gamma = conv3x3(a), beta = conv3x3(a).
public final class SPADE {
    public let norm: BatchNorm
    public let shared: Conv2d, gamma: Conv2d, beta: Conv2d

    private var normalized: Tensor?
    private var actv: Tensor?
    private var gammaOut: Tensor?

    public init(_ state: ModelState, _ prefix: String, normNC: Int, labelNC: Int, hidden: Int) {
        norm = BatchNorm(state, prefix + "param_free_norm.", channels: normNC)
        shared = Conv2d(state, prefix + "mlp_shared.0.", cin: labelNC, cout: hidden, kernel: 3, pad: 1)
        gamma = Conv2d(state, prefix + "mlp_gamma.", cin: hidden, cout: normNC, kernel: 3, pad: 1)
        beta = Conv2d(state, prefix + "mlp_beta.", cin: hidden, cout: normNC, kernel: 3, pad: 1)
    }

    /// `seg` must already be resized to x's height and width (the caller caches
    /// one resize per resolution: every SPADE at that size uses the same one).
    public func forward(_ x: Tensor, seg: Tensor, mode: Mode, _ ctx: Context) -> Tensor {
        precondition(seg.h == x.h && seg.w == x.w && seg.n == x.n)
        let n = norm.forward(x, mode: mode, ctx)
        let a = shared.forward(seg, mode: mode, ctx)
        Activation.relu(a)
        let g = gamma.forward(a, mode: mode, ctx)
        let b = beta.forward(a, mode: mode, ctx)
        // out = n * (1 + gamma) + beta, written over beta's buffer
        for i in 0..<b.count { b.data[i] = n.data[i] * (1 + g.data[i]) + b.data[i] }
        normalized = n; actv = a; gammaOut = g
        return b
    }

    /// Accumulates parameter gradients and adds dL/dx into `dx`.
    public func backward(_ dy: Tensor, dx: Tensor, parameterGradients: Bool, _ ctx: Context) {
        guard let n = normalized, let a = actv, let g = gammaOut else { preconditionFailure("backward before forward") }
        let arena = ctx.arena
        // d beta = dy; d gamma = dy * n; d n = dy * (1 + gamma)
        let dGamma = arena.tensor(dy.n, dy.c, dy.h, dy.w)
        let dNorm = arena.tensor(dy.n, dy.c, dy.h, dy.w)
        for i in 0..<dy.count {
            let d = dy.data[i]
            dGamma.data[i] = d * n.data[i]
            dNorm.data[i] = d * (1 + g.data[i])
        }
        let dA = arena.zeroTensor(like: a)
        beta.backward(dy, dx: dA, parameterGradients: parameterGradients, ctx)
        gamma.backward(dGamma, dx: dA, parameterGradients: parameterGradients, ctx)
        Activation.reluBackward(output: a, grad: dA)
        if parameterGradients { shared.backward(dA, dx: nil, parameterGradients: true, ctx) }
        norm.backward(dNorm, dx: dx, ctx)
    }
}
