import CKernels
import Foundation
import SpadeCore

/// BatchNorm2d(affine=False) as in SPADE's `param_free_norm`, synchronized
/// across replicas through the context's `StatisticsReducer`.
///
/// Forward (train): each replica computes per-channel count, sum and
/// sum of squares about its own mean (two-pass, in double), reduces
/// [count, sum, M2 + n*mean^2] in ONE collective, and recovers the global mean
/// and biased variance (Chan's merge). Backward reduces [sum dy, sum dy*xhat]
/// in one collective. Running statistics use the unbiased variance.
///
/// Each direction is split in two (`beginForward`/`finishForward`,
/// `beginBackward`/`finishBackward`) around the collective, so that SPADE runs its
/// modulation convolutions while the replicas exchange statistics; `forward` and
/// `backward` are the two halves back to back.
public final class BatchNorm {
    public let channels: Int
    let state: ModelState
    public let runningMean: BufferRef, runningVar: BufferRef
    public let batchesTracked: CounterRef

    private var xhat: Tensor?
    private var invStd: UnsafeMutablePointer<Float>?
    private var globalCount = 0.0
    private var trained = false
    /// Between begin and finish: the input (forward) or dL/dxhat (backward), the statistics
    /// buffer and its reduction in flight.
    private var started: (tensor: Tensor, mode: Mode, stats: UnsafeMutableBufferPointer<Double>?,
                          pending: PendingStatisticsSum?)?

    public init(_ state: ModelState, _ prefix: String, channels: Int) {
        self.state = state
        self.channels = channels
        runningMean = state.addBuffer(prefix + "running_mean", [channels], initial: 0)
        runningVar = state.addBuffer(prefix + "running_var", [channels], initial: 1)
        batchesTracked = state.addCounter(prefix + "num_batches_tracked")
    }

    /// Returns xhat = (x - mean) / sqrt(var + eps), kept for backward.
    public func forward(_ x: Tensor, mode: Mode, _ ctx: Context) -> Tensor {
        beginForward(x, mode: mode, ctx)
        return finishForward(ctx)
    }

    /// Train mode: this replica's statistics, and their reduction started.
    public func beginForward(_ x: Tensor, mode: Mode, _ ctx: Context) {
        precondition(x.c == channels, "batch norm channels")
        precondition(started == nil, "beginForward twice")
        guard mode == .train else { started = (x, mode, nil, nil); return }
        // stats = [count, sum_0..C-1, q_0..C-1]
        let stats = ctx.arena.doubles(1 + 2 * channels)
        let p = x.plane, n = Double(x.n * p)
        stats[0] = n
        for c in 0..<channels {
            // two passes in double (C kernels with independent lanes, so they vectorize)
            var s = 0.0
            for i in 0..<x.n { s += spade_sum(x.sample(i) + c * p, p) }
            let mean = s / n
            var m2 = 0.0
            for i in 0..<x.n { m2 += spade_sum_squared_deviation(x.sample(i) + c * p, p, mean) }
            stats[1 + c] = s
            stats[1 + channels + c] = m2 + n * mean * mean
        }
        started = (x, mode, stats, ctx.reducer?.startSumAcrossReplicas(stats))
    }

    /// Waits for the statistics of `beginForward` and normalizes; returns xhat.
    public func finishForward(_ ctx: Context) -> Tensor {
        guard let (x, mode, stats, pending) = started else { preconditionFailure("finishForward before beginForward") }
        started = nil
        pending?.wait()
        let y = ctx.arena.tensor(x.n, x.c, x.h, x.w)
        let inv = ctx.arena.floats(channels)
        let shift = ctx.arena.floats(channels)   // the mean subtracted per channel
        let p = x.plane, eps = TorchConstants.batchNormEps
        let rm = state.buffer(runningMean), rv = state.buffer(runningVar)
        if mode == .train, let stats {
            let total = stats[0]
            let momentum = Double(TorchConstants.batchNormMomentum)
            for c in 0..<channels {
                let mean = stats[1 + c] / total
                let m2 = max(stats[1 + channels + c] - total * mean * mean, 0)
                let varBiased = m2 / total
                let istd = 1 / (varBiased + eps).squareRoot()
                inv[c] = Float(istd)
                shift[c] = Float(mean)
                let varUnbiased = total > 1 ? m2 / (total - 1) : varBiased
                rm[c] = Float((1 - momentum) * Double(rm[c]) + momentum * mean)
                rv[c] = Float((1 - momentum) * Double(rv[c]) + momentum * varUnbiased)
            }
            state.counters[batchesTracked.index] += 1
            globalCount = total
        } else {
            for c in 0..<channels {
                let istd = 1 / (Double(rv[c]) + eps).squareRoot()
                inv[c] = Float(istd)
                shift[c] = rm[c]
            }
        }
        for i in 0..<x.n {
            for c in 0..<channels {
                let src = x.sample(i) + c * p, dst = y.sample(i) + c * p
                // (x - mean) * invstd: x*a + b would cancel catastrophically for |mean| >> std
                let a = inv[c], m = shift[c]
                for j in 0..<p { dst[j] = (src[j] - m) * a }
            }
        }
        xhat = y
        invStd = inv
        trained = mode == .train
        return y
    }

    /// Adds dL/dx into `dx` given dL/dxhat.
    public func backward(_ dy: Tensor, dx: Tensor, _ ctx: Context) {
        beginBackward(dy, ctx)
        finishBackward(dx: dx, ctx)
    }

    /// After a train-mode forward: this replica's [sum dy, sum dy*xhat], their reduction started.
    /// `dy` must stay unchanged until `finishBackward`.
    public func beginBackward(_ dy: Tensor, _ ctx: Context) {
        guard let xhat else { preconditionFailure("backward before forward") }
        precondition(started == nil, "beginBackward while another half is open")
        guard trained else { started = (dy, .eval, nil, nil); return }
        let p = dy.plane
        // sums = [sum dy (C), sum dy*xhat (C)]
        let sums = ctx.arena.doubles(2 * channels)
        for c in 0..<channels {
            var s = 0.0, sx = 0.0
            for i in 0..<dy.n {
                let g = dy.sample(i) + c * p
                s += spade_sum(g, p)
                sx += spade_dot(g, xhat.sample(i) + c * p, p)
            }
            sums[c] = s; sums[channels + c] = sx
        }
        started = (dy, .train, sums, ctx.reducer?.startSumAcrossReplicas(sums))
    }

    /// Waits for the sums of `beginBackward` and adds dL/dx into `dx`.
    public func finishBackward(dx: Tensor, _ ctx: Context) {
        guard let (dy, _, sums, pending) = started, let xhat, let inv = invStd else {
            preconditionFailure("finishBackward before beginBackward")
        }
        started = nil
        pending?.wait()
        let p = dy.plane
        guard let sums else {
            for i in 0..<dy.n { for c in 0..<channels {
                let g = dy.sample(i) + c * p, o = dx.sample(i) + c * p, a = inv[c]
                for j in 0..<p { o[j] += g[j] * a }
            } }
            return
        }
        // dx = (dy - sum(dy)/N - xhat * sum(dy*xhat)/N) * invstd
        for c in 0..<channels {
            let meanDy = Float(sums[c] / globalCount), meanDyX = Float(sums[channels + c] / globalCount)
            let a = inv[c]
            for i in 0..<dy.n {
                let g = dy.sample(i) + c * p, xh = xhat.sample(i) + c * p, o = dx.sample(i) + c * p
                for j in 0..<p { o[j] += (g[j] - meanDy - xh[j] * meanDyX) * a }
            }
        }
    }
}
