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
    public let expAvg: UnsafeMutablePointer<Float>
    public let expAvgSq: UnsafeMutablePointer<Float>
    /// Steps taken (PyTorch's `state['step']`).
    public var step: Int64 = 0

    public init(count: Int, beta1: Double = 0, beta2: Double = 0.9, eps: Double = 1e-8) {
        self.count = count; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        expAvg = .allocate(capacity: max(count, 1)); expAvg.initialize(repeating: 0, count: max(count, 1))
        expAvgSq = .allocate(capacity: max(count, 1)); expAvgSq.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { expAvg.deallocate(); expAvgSq.deallocate() }

    public func reset() {
        step = 0
        expAvg.update(repeating: 0, count: count)
        expAvgSq.update(repeating: 0, count: count)
    }

    /// One step with the gradients `summedGradients / replicas` (data parallelism sums the
    /// replicas' gradients; the division by their number, PyTorch's averaging, happens here,
    /// bit for bit, in the pass Adam makes over the gradients anyway).
    public func update(parameters p: UnsafeMutablePointer<Float>, summedGradients g: UnsafePointer<Float>,
                       replicas: Int = 1, lr: Double) {
        precondition(replicas >= 1)
        step += 1
        let t = Double(step)
        let stepSize = Float(-(lr / (1 - pow(beta1, t))))
        let bc2Sqrt = Float((1 - pow(beta2, t)).squareRoot())
        spade_adam_update(p, g, Float(replicas), expAvg, expAvgSq, count, Float(1 - beta1), Float(beta2),
                          Float(1 - beta2), stepSize, bc2Sqrt, Float(eps))
    }
}
