import Foundation

/// `max|a-b| / max|b|`: the README's per-tensor relative error.
public func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "size mismatch \(a.count) vs \(b.count)")
    var maxDiff = 0.0, maxRef = 0.0
    for i in 0..<a.count {
        let d = abs(Double(a[i]) - Double(b[i]))
        if !(d <= maxDiff) { maxDiff = d }   // NaN propagates as failure
        maxRef = max(maxRef, abs(Double(b[i])))
    }
    if maxDiff.isNaN { return .infinity }
    return maxRef == 0 ? maxDiff : maxDiff / maxRef
}

public func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count, "size mismatch \(a.count) vs \(b.count)")
    var m = 0.0
    for i in 0..<a.count {
        let d = abs(Double(a[i]) - Double(b[i]))
        if !(d <= m) { m = d }
    }
    return m
}

public func maxAbs(_ a: [Float]) -> Double { a.reduce(0.0) { max($0, abs(Double($1))) } }

/// Central-difference gradient check (Caffe's GradientChecker): for each
/// probed input element, compares d(loss)/dx from `analytic` with
/// (loss(x+h) - loss(x-h)) / 2h. Returns the worst error relative to
/// max(1, |numeric|, |analytic|) scaled by the gradient magnitude.
public func gradientCheck(input: [Float], analytic: [Float], step h: Float = 1e-2,
                          probes: [Int], loss: ([Float]) -> Double) -> Double {
    var worst = 0.0
    let scale = max(maxAbs(analytic), 1e-3)
    for i in probes {
        var xp = input, xm = input
        xp[i] += h; xm[i] -= h
        let numeric = (loss(xp) - loss(xm)) / (2 * Double(h))
        let err = abs(numeric - Double(analytic[i])) / scale
        worst = max(worst, err)
    }
    return worst
}
