import CKernels
import SpadeCore

/// Spectral normalisation with torch.nn.utils.spectral_norm semantics.
///
/// W = weight_orig viewed as (rows = Cout, cols = Cin*k*k). Training forward runs
/// one power iteration (v = normalize(W^T u), u = normalize(W v)), writes u, v
/// back, and uses W / sigma with sigma = u . (W v). Eval uses the stored u, v.
/// Gradients flow through sigma with u, v held constant.
public enum SpectralNorm {
    /// Runs the power iteration (training) and returns sigma; the convolution then uses
    /// W with weight scale 1 / sigma. The matrix-vector products run through BLAS in float32
    /// (as torch.mv); norms and sigma accumulate in double. `scratch` holds `rows` floats.
    public static func forward(weightOrig w: UnsafePointer<Float>, rows: Int, cols: Int,
                               u: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                               powerIteration: Bool, scratch wv: UnsafeMutablePointer<Float>) -> Float {
        let eps = Double(TorchConstants.spectralNormEps)
        if powerIteration {
            // v = normalize(W^T u)
            sgemv(trans: true, m: rows, n: cols, a: w, lda: cols, x: u, beta: 0, y: v)
            let vn = max(squaredNorm(v, cols).squareRoot(), eps)
            for c in 0..<cols { v[c] = Float(Double(v[c]) / vn) }
            // u = normalize(W v)
            sgemv(m: rows, n: cols, a: w, lda: cols, x: v, beta: 0, y: wv)
            let un = max(squaredNorm(wv, rows).squareRoot(), eps)
            for r in 0..<rows { u[r] = Float(Double(wv[r]) / un) }
        } else {
            sgemv(m: rows, n: cols, a: w, lda: cols, x: v, beta: 0, y: wv)
        }
        // sigma = u . (W v); after the power iteration W v is already in wv (same W, same v)
        var sigmaD = 0.0
        for r in 0..<rows { sigmaD += Double(u[r]) * Double(wv[r]) }
        return Float(sigmaD)
    }

    /// W / sigma (what torch's spectral_norm hands to the convolution), for tests.
    public static func normalized(weightOrig w: UnsafePointer<Float>, count: Int, sigma: Float) -> [Float] {
        (0..<count).map { w[$0] / sigma }
    }

    private static func squaredNorm(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        var s = 0.0
        for i in 0..<n { s += Double(x[i]) * Double(x[i]) }
        return s
    }

    /// dWorig (+)= G / sigma - (sum(G * Worig) / sigma^2) * u v^T, G = dL/d(W/sigma);
    /// `accumulate: false` overwrites dWorig.
    public static func backward(gradNormalized g: UnsafePointer<Float>, weightOrig w: UnsafePointer<Float>,
                                rows: Int, cols: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                sigma: Float, accumulate: Bool = true, gradOrig: UnsafeMutablePointer<Float>) {
        let gw = spade_dot(g, w, rows * cols)
        let s = Double(sigma)
        let coef = Float(gw / (s * s))   // term 2: through sigma; term 1: direct
        spade_spectral_norm_grad(g, u, v, rows, cols, sigma, coef, accumulate ? 1 : 0, gradOrig)
    }

}
