// The reference/README.md "Tolerances" rules for a whole training iteration, shared by the
// in-process check (SpadeNNTests.NetworkTests) and the end-to-end checks of checkpoints
// written by the CLI (CLITests.DistributedTrainingTests). Plain arrays and names only, so
// both the model state and a checkpoint file can be checked with the same logic.

import Foundation
import SafeTensors

/// Recommended tolerances of reference/README.md ("Tolerances").
public enum ReferenceTolerance {
    /// Single ops, SPADE/resblock modules, BN running statistics, u/v, sigma (rel).
    public static let op = 1e-5
    /// Network forward values: outputs, activations, losses (rel).
    public static let network = 2e-5
    /// Network gradients, per tensor (rel).
    public static let gradient = 1e-4
    /// Structurally-zero gradients: |g| <= zeroGradient * max |grad| over the network.
    public static let zeroGradient = 1e-5
    /// Parameters after the step, non-ambiguous elements: |after - expected| <= afterStep * lr.
    public static let afterStep = 0.1
}

/// The NVlabs generator's residual blocks in forward order (`up_4` only for "most").
public let nvlabsGeneratorBlockOrder = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4"]

/// The generator blocks present among `parameterNames` (keys without the `netG.` prefix), in forward order.
public func generatorBlockNames(in parameterNames: [String]) -> [String] {
    let names = Set(parameterNames)
    return nvlabsGeneratorBlockOrder.filter { names.contains("\($0).conv_0.weight_orig") }
}

/// Generator biases whose gradient is exactly zero in exact arithmetic (reference/README.md,
/// Tolerances (1)): a per-channel constant in front of a training-mode batch norm has no effect.
/// That is fc.bias, every conv_0.bias, and conv_1.bias / norm_s.mlp_beta.bias of every block
/// but the last (whose output feeds conv_img instead of a batch norm).
public func structurallyZeroGradients(blockNames: [String], existing: [String]) -> Set<String> {
    var names: Set<String> = ["fc.bias"]
    for (i, b) in blockNames.enumerated() {
        names.insert("\(b).conv_0.bias")
        if i < blockNames.count - 1 {
            names.insert("\(b).conv_1.bias")
            names.insert("\(b).norm_s.mlp_beta.bias")
        }
    }
    return names.intersection(existing)
}

/// One parameter tensor after the Adam step against the fixture's `after.*`.
public struct AfterStepCheck: Sendable {
    /// max |after - expected| / lr over the elements compared exactly (0 if none).
    public var worstOverLR = 0.0
    /// Elements compared with |after - expected| <= 0.1 lr.
    public var comparedElements = 0
    /// Ambiguous elements (or all, for a structurally-zero gradient) with |after - before| > lr.
    public var ambiguousViolations: [Int] = []
    public var passed: Bool { worstOverLR <= ReferenceTolerance.afterStep && ambiguousViolations.isEmpty }
}

/// The README rule for parameters after the step: `ambiguous` elements (and every element of a
/// tensor whose gradient is structurally zero) may move anywhere in [-lr, lr] (Adam's sign step
/// on rounding noise), so only |after - before| <= lr is checked for them; all other elements
/// must satisfy |after - expected| <= 0.1 lr.
public func checkParameterAfterStep(after: [Float], before: [Float], expected: [Float], ambiguous: Set<Int>,
                                    everyElementAmbiguous: Bool, lr: Double) -> AfterStepCheck {
    precondition(after.count == expected.count && before.count == expected.count, "size mismatch")
    var r = AfterStepCheck()
    var worst = 0.0
    for i in 0..<after.count {
        if everyElementAmbiguous || ambiguous.contains(i) {
            if !(abs(Double(after[i]) - Double(before[i])) <= lr * 1.0001) { r.ambiguousViolations.append(i) }
        } else {
            let d = abs(Double(after[i]) - Double(expected[i]))
            if !(d <= worst) { worst = d }  // NaN propagates as a failure
            r.comparedElements += 1
        }
    }
    r.worstOverLR = worst.isNaN ? .infinity : worst / lr
    return r
}

/// Gradients of one network against the fixture's `grad.<net>.*`.
public struct GradientCheck: Sendable {
    /// Worst per-tensor relative error among the ordinary gradients, and its tensor.
    public var worstRelative = 0.0
    public var worstName = ""
    /// Worst max |g| / max |grad over the network| among the structurally-zero gradients.
    public var worstZeroRatio = 0.0
    /// One line per tensor outside its tolerance.
    public var failures: [String] = []
}

/// Compares `actual(name)` with `expected(name)` for every parameter name: relative error
/// <= 1e-4 per tensor, except names in `zeroNames` (|g| <= 1e-5 x the network's max |grad|).
public func checkGradients(names: [String], actual: (String) throws -> [Float], expected: (String) throws -> [Float],
                           zeroNames: Set<String> = []) rethrows -> GradientCheck {
    var globalMax = 0.0
    for n in names { globalMax = max(globalMax, maxAbs(try expected(n))) }
    var r = GradientCheck()
    for n in names {
        let a = try actual(n)
        if zeroNames.contains(n) {
            let ratio = globalMax > 0 ? maxAbs(a) / globalMax : maxAbs(a)
            r.worstZeroRatio = max(r.worstZeroRatio, ratio)
            if !(ratio <= ReferenceTolerance.zeroGradient) {
                r.failures.append("\(n): structurally-zero gradient is \(ratio) x the largest gradient")
            }
        } else {
            let e = relativeError(a, try expected(n))
            if !(e <= r.worstRelative) { r.worstRelative = e; r.worstName = n }
            if !(e <= ReferenceTolerance.gradient) { r.failures.append("\(n): gradient relative error \(e)") }
        }
    }
    return r
}

/// One Adam step a run took, recomputed in float64 from the state it started from and the
/// moments it ended with (the gradient it used is implied: g = (m - beta1 m0) / (1 - beta1)).
/// Layout-independent: whatever gradient a run computed, its parameters and second moment must
/// be exactly what Adam makes of it. A stale or unloaded moment, a skipped or doubly applied
/// update, a shard nobody updated or a wrong step count shows here, not as a "gradient" error.
public struct AdamStepCheck: Sendable {
    /// max |after - expected| over the elements, in units of lr, after removing float32 rounding
    /// of the parameter itself (one ulp of |after|).
    public var worstParameterOverLR = 0.0
    /// max |v - expected v| / expected v (the second moment, rel).
    public var worstSecondMoment = 0.0
    /// Elements checked.
    public var elements = 0
    public init() {}

    /// float32 evaluation of the update: Adam's few element-wise operations in float32 against
    /// float64 leave ~1e-6 of the update (<= lr), i.e. ~1e-6 lr; measured <= 1.2e-4 lr including
    /// the parameters' own rounding. 1e-2 lr is 100x that and far below what any missed update
    /// (~lr) or stale moment produces.
    public static let parameterBound = 1e-2
    /// A few float32 roundings of v = beta2 v0 + (1 - beta2) g^2 (measured <= 2e-7).
    public static let secondMomentBound = 1e-5
    public var passed: Bool { worstParameterOverLR <= Self.parameterBound && worstSecondMoment <= Self.secondMomentBound }
}

/// Checks `AdamStepCheck` for one tensor: `before`, `m0`, `v0` from the starting state;
/// `after`, `m`, `v` from the state after the step; `step` is Adam's step count after it.
public func checkAdamStep(before: [Float], m0: [Float], v0: [Float], after: [Float], m: [Float], v: [Float],
                          step: Int, lr: Double, beta1: Double, beta2: Double, eps: Double,
                          into r: inout AdamStepCheck) {
    precondition([m0.count, v0.count, after.count, m.count, v.count].allSatisfy { $0 == before.count }, "size mismatch")
    let t = Double(step)
    let bias1 = 1 - pow(beta1, t), bias2Sqrt = (1 - pow(beta2, t)).squareRoot()
    for i in before.indices {
        let mi = Double(m[i]), vi = Double(v[i])
        let g = (mi - beta1 * Double(m0[i])) / (1 - beta1)
        let expectedV = beta2 * Double(v0[i]) + (1 - beta2) * g * g
        let vError = abs(vi - expectedV) / max(expectedV, Double(Float.leastNormalMagnitude))
        let expected = Double(before[i]) - lr / bias1 * mi / (vi.squareRoot() / bias2Sqrt + eps)
        let pError = max(abs(Double(after[i]) - expected) - Double(after[i].ulp), 0) / lr
        if !(vError <= r.worstSecondMoment) { r.worstSecondMoment = vError.isNaN ? .infinity : vError }
        if !(pError <= r.worstParameterOverLR) { r.worstParameterOverLR = pError.isNaN ? .infinity : pError }
    }
    r.elements += before.count
}

/// One network's gradient in two runs that differ only in summation order (rank count, BLAS
/// kernel, transport), as whole-network figures.
public struct LayoutGradientComparison: Sendable {
    /// |a - b|_2 / |b|_2 over all ordinary (not structurally-zero) gradients.
    public var relativeL2 = 0.0
    /// max |a - b| / max |b| over the same elements.
    public var maxOverLargest = 0.0
    /// The tensor with the worst per-tensor relative error, and that error.
    public var worstTensor = ""
    public var worstTensorRelative = 0.0
    /// Structurally-zero gradients of `a`: max |g| / max |b| (must stay at rounding level).
    public var worstZeroRatio = 0.0
}

public func compareLayoutGradients(names: [String], actual: (String) throws -> [Float], expected: (String) throws -> [Float],
                                   zeroNames: Set<String>) rethrows -> LayoutGradientComparison {
    var r = LayoutGradientComparison()
    var differenceSquares = 0.0, referenceSquares = 0.0, largest = 0.0, largestDifference = 0.0
    var zeroLargest = 0.0
    for n in names {
        let a = try actual(n), b = try expected(n)
        precondition(a.count == b.count, "\(n): size mismatch")
        let bLargest = maxAbs(b)
        largest = max(largest, bLargest)
        if zeroNames.contains(n) { zeroLargest = max(zeroLargest, maxAbs(a)); continue }
        var tensorDifference = 0.0
        for i in a.indices {
            let d = Double(a[i]) - Double(b[i])
            differenceSquares += d * d
            referenceSquares += Double(b[i]) * Double(b[i])
            if !(abs(d) <= tensorDifference) { tensorDifference = abs(d) }
        }
        largestDifference = max(largestDifference, tensorDifference.isNaN ? .infinity : tensorDifference)
        let rel = tensorDifference / max(bLargest, Double(Float.leastNormalMagnitude))
        if !(rel <= r.worstTensorRelative) { r.worstTensorRelative = rel.isNaN ? .infinity : rel; r.worstTensor = n }
    }
    r.relativeL2 = differenceSquares.isNaN ? .infinity : (differenceSquares / max(referenceSquares, .leastNormalMagnitude)).squareRoot()
    r.maxOverLargest = largestDifference / max(largest, .leastNormalMagnitude)
    r.worstZeroRatio = zeroLargest / max(largest, .leastNormalMagnitude)
    return r
}
