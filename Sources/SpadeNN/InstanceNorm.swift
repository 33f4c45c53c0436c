import CKernels
import SpadeCore

/// InstanceNorm2d(affine=False): per sample and channel over H*W, biased
/// variance, eps 1e-5, no running statistics (the discriminator's norm).
public final class InstanceNorm {
    private var xhat: Tensor?
    private var invStd: UnsafeMutablePointer<Float>?

    public init() {}

    public func forward(_ x: Tensor, _ ctx: Context) -> Tensor {
        let y = ctx.arena.tensor(x.n, x.c, x.h, x.w)
        let inv = ctx.arena.floats(x.n * x.c)
        let p = x.plane
        for k in 0..<(x.n * x.c) {
            let src = x.data + k * p, dst = y.data + k * p
            let mean = spade_sum(src, p) / Double(p)
            let m2 = spade_sum_squared_deviation(src, p, mean)
            let istd = 1 / (m2 / Double(p) + TorchConstants.instanceNormEps).squareRoot()
            let a = Float(istd), b = Float(-mean * istd)
            inv[k] = a
            for j in 0..<p { dst[j] = src[j] * a + b }
        }
        xhat = y
        invStd = inv
        return y
    }

    /// Adds dL/dx into `dx` (which may cover only the first dy.n samples).
    public func backward(_ dy: Tensor, dx: Tensor, _ ctx: Context) {
        guard let xhat, let inv = invStd else { preconditionFailure("backward before forward") }
        let p = dy.plane
        for k in 0..<(dy.n * dy.c) {
            let g = dy.data + k * p, xh = xhat.data + k * p, o = dx.data + k * p
            let s = spade_sum(g, p), sx = spade_dot(g, xh, p)
            let meanDy = Float(s / Double(p)), meanDyX = Float(sx / Double(p)), a = inv[k]
            for j in 0..<p { o[j] += (g[j] - meanDy - xh[j] * meanDyX) * a }
        }
    }
}
