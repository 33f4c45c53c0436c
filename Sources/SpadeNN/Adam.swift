import CKernels
import Foundation

/// Adam with PyTorch's (single-tensor, CPU) float32 arithmetic, element by element (the loop is
/// the C kernel spade_adam_update, which vectorizes):
///   m = lerp(m, g, 1 - beta1);  v = v * beta2 + ((1 - beta2) * g) * g
///   p = p + (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// Hyper-parameters are Python floats (double) cast to float32 where torch casts them.
/// Moments live in two flat buffers parallel to the network's parameters.
public final class Adam {
    public let beta1: Double, beta2: Double, eps: Double
    public let count: Int
    public private(set) var expAvg: UnsafeMutablePointer<Float>
    public private(set) var expAvgSq: UnsafeMutablePointer<Float>
    private var ownsMoments = true
    /// Steps taken (PyTorch's `state['step']`).
    public var step: Int64 = 0

    public init(count: Int, beta1: Double = 0, beta2: Double = 0.9, eps: Double = 1e-8) {
        self.count = count; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        expAvg = .allocate(capacity: max(count, 1)); expAvg.initialize(repeating: 0, count: max(count, 1))
        expAvgSq = .allocate(capacity: max(count, 1)); expAvgSq.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { if ownsMoments { expAvg.deallocate(); expAvgSq.deallocate() } }

    /// Moves the moments into caller-owned memory of `count` floats each (node-shared memory),
    /// copying the current moments of `ranges` (the part this replica updates; other processes
    /// copy theirs).
    public func adoptMomentStorage(expAvg m: UnsafeMutablePointer<Float>, expAvgSq v: UnsafeMutablePointer<Float>,
                                   copying ranges: [Range<Int>]) {
        for r in ranges {
            precondition(r.lowerBound >= 0 && r.upperBound <= count, "moment range \(r) outside 0..<\(count)")
            (m + r.lowerBound).update(from: expAvg + r.lowerBound, count: r.count)
            (v + r.lowerBound).update(from: expAvgSq + r.lowerBound, count: r.count)
        }
        if ownsMoments { expAvg.deallocate(); expAvgSq.deallocate() }
        expAvg = m; expAvgSq = v
        ownsMoments = false
    }

    /// One step with the gradients `summedGradients / replicas` (data parallelism sums the
    /// replicas' gradients; the division by their number, PyTorch's averaging, happens here,
    /// bit for bit, in the pass Adam makes over the gradients anyway).
    ///
    /// `ranges` (default: everything) limits the update to those elements: with the optimizer
    /// sharded across replicas, each updates its own part of parameters and moments.
    public func update(parameters p: UnsafeMutablePointer<Float>, summedGradients g: UnsafePointer<Float>,
                       replicas: Int = 1, lr: Double, ranges: [Range<Int>]? = nil) {
        update(parameters: p, gradientParts: [g], replicas: replicas, lr: lr, ranges: ranges)
    }

    /// The same with the sum not formed yet: the gradient is `gradientParts` added element by
    /// element in order (the replicas' own gradients, rank order), then divided by `replicas`.
    public func update(parameters p: UnsafeMutablePointer<Float>, gradientParts: [UnsafePointer<Float>],
                       replicas: Int = 1, lr: Double, ranges: [Range<Int>]? = nil) {
        precondition(replicas >= 1 && !gradientParts.isEmpty)
        step += 1
        let t = Double(step)
        let stepSize = Float(-(lr / (1 - pow(beta1, t))))
        let bc2Sqrt = Float((1 - pow(beta2, t)).squareRoot())
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>?.self, capacity: gradientParts.count) { parts in
            for r in ranges ?? [0..<count] where !r.isEmpty {
                precondition(r.lowerBound >= 0 && r.upperBound <= count, "Adam range \(r) outside 0..<\(count)")
                for (k, g) in gradientParts.enumerated() { parts[k] = g + r.lowerBound }
                spade_adam_update(p + r.lowerBound, parts.baseAddress!, gradientParts.count, Float(replicas),
                                  expAvg + r.lowerBound, expAvgSq + r.lowerBound, r.count, Float(1 - beta1),
                                  Float(beta2), Float(1 - beta2), stepSize, bc2Sqrt, Float(eps))
            }
        }
    }
}
