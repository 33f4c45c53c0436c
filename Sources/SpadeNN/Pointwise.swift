import Foundation
import SpadeCore

/// Elementwise activations. Backward uses the forward OUTPUT, which has the
/// same sign as the input for (leaky) ReLU, so activations can run in place.
/// PyTorch's derivative at exactly 0 is the negative side's (slope, or 0).
/// Loops are written as selects, not conditional stores, so that they vectorize
/// (a branch on the sign of activations mispredicts about half the time).
public enum Activation {
    public static func leakyReLU(_ t: Tensor) {
        let s = TorchConstants.leakySlope, d = t.data
        for i in 0..<t.count { let v = d[i]; d[i] = v > 0 ? v : v * s }
    }

    /// y = leaky_relu(x) into a new buffer (when x itself is still needed, e.g. a norm's xhat).
    public static func leakyReLU(_ x: Tensor, _ ctx: Context) -> Tensor {
        let y = ctx.arena.tensor(x.n, x.c, x.h, x.w)
        let s = TorchConstants.leakySlope
        for i in 0..<x.count { let v = x.data[i]; y.data[i] = v > 0 ? v : v * s }
        return y
    }

    /// grad *= (y > 0 ? 1 : slope), in place.
    public static func leakyReLUBackward(output y: Tensor, grad: Tensor) {
        let s = TorchConstants.leakySlope, o = y.data, g = grad.data
        for i in 0..<grad.count { let v = g[i]; g[i] = o[i] > 0 ? v : v * s }
    }

    public static func relu(_ t: Tensor) {
        let d = t.data
        for i in 0..<t.count { let v = d[i]; d[i] = v > 0 ? v : 0 }
    }

    public static func reluBackward(output y: Tensor, grad: Tensor) {
        let o = y.data, g = grad.data
        for i in 0..<grad.count { let v = g[i]; g[i] = o[i] > 0 ? v : 0 }
    }

    public static func tanh(_ t: Tensor) {
        let d = t.data
        for i in 0..<t.count { d[i] = Foundation.tanh(d[i]) }
    }

    /// dx = dy * (1 - y^2), into a new buffer.
    public static func tanhBackward(output y: Tensor, grad dy: Tensor, _ ctx: Context) -> Tensor {
        let dx = ctx.arena.tensor(dy.n, dy.c, dy.h, dy.w)
        for i in 0..<dy.count { let v = y.data[i]; dx.data[i] = dy.data[i] * (1 - v * v) }
        return dx
    }
}

/// PyTorch legacy 'nearest' interpolation and avg_pool2d(3, 2, 1, count_include_pad=False).
public enum Resample {
    /// Source index of each output index: min(floor(float(d) * float(in/out)), in-1), in float32.
    public static func nearestIndices(output: Int, input: Int) -> [Int] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { min(Int((Float($0) * scale).rounded(.down)), input - 1) }
    }

    public static func nearest(_ x: Tensor, h: Int, w: Int, _ ctx: Context) -> Tensor {
        let y = ctx.arena.tensor(x.n, x.c, h, w)
        let iy = nearestIndices(output: h, input: x.h), ix = nearestIndices(output: w, input: x.w)
        for k in 0..<(x.n * x.c) {
            let src = x.data + k * x.plane, dst = y.data + k * y.plane
            for r in 0..<h {
                let srow = src + iy[r] * x.w, drow = dst + r * w
                for c in 0..<w { drow[c] = srow[ix[c]] }
            }
        }
        return y
    }

    /// Adds each output gradient into its source element of `dx`.
    public static func nearestBackward(_ dy: Tensor, dx: Tensor) {
        let iy = nearestIndices(output: dy.h, input: dx.h), ix = nearestIndices(output: dy.w, input: dx.w)
        for k in 0..<(dy.n * dy.c) {
            let src = dy.data + k * dy.plane, dst = dx.data + k * dx.plane
            for r in 0..<dy.h {
                let srow = src + r * dy.w, drow = dst + iy[r] * dx.w
                for c in 0..<dy.w { drow[ix[c]] += srow[c] }
            }
        }
    }

    public static func avgPoolOutput(_ n: Int) -> Int { (n + 2 - 3) / 2 + 1 }

    public static func avgPool(_ x: Tensor, _ ctx: Context) -> Tensor {
        let oh = avgPoolOutput(x.h), ow = avgPoolOutput(x.w)
        let y = ctx.arena.tensor(x.n, x.c, oh, ow)
        for k in 0..<(x.n * x.c) {
            let src = x.data + k * x.plane, dst = y.data + k * y.plane
            for r in 0..<oh {
                let r0 = max(2 * r - 1, 0), r1 = min(2 * r + 2, x.h)
                for c in 0..<ow {
                    let c0 = max(2 * c - 1, 0), c1 = min(2 * c + 2, x.w)
                    var s: Float = 0
                    for i in r0..<r1 { for j in c0..<c1 { s += src[i * x.w + j] } }
                    dst[r * ow + c] = s / Float((r1 - r0) * (c1 - c0))
                }
            }
        }
        return y
    }

    /// Adds dL/dx into `dx` (same sample count as dy).
    public static func avgPoolBackward(_ dy: Tensor, dx: Tensor) {
        for k in 0..<(dy.n * dy.c) {
            let src = dy.data + k * dy.plane, dst = dx.data + k * dx.plane
            for r in 0..<dy.h {
                let r0 = max(2 * r - 1, 0), r1 = min(2 * r + 2, dx.h)
                for c in 0..<dy.w {
                    let c0 = max(2 * c - 1, 0), c1 = min(2 * c + 2, dx.w)
                    let g = src[r * dy.w + c] / Float((r1 - r0) * (c1 - c0))
                    for i in r0..<r1 { for j in c0..<c1 { dst[i * dx.w + j] += g } }
                }
            }
        }
    }
}

/// dst += src (same count).
@inline(__always) func addInPlace(_ dst: Tensor, _ src: Tensor) {
    precondition(dst.count == src.count)
    for i in 0..<dst.count { dst.data[i] += src.data[i] }
}
