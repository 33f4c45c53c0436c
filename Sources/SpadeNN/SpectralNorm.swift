/// Spectral normalisation with torch.nn.utils.spectral_norm semantics.
///
/// W = weight_orig viewed as (rows = Cout, cols = Cin*k*k). Training forward runs
/// one power iteration (v = normalize(W^T u), u = normalize(W v)), writes u, v
/// back, and uses W / sigma with sigma = u . (W v). Eval uses the stored u, v.
/// Gradients flow through sigma with u, v held constant.
public enum SpectralNorm {
    /// Writes W / sigma into `normalized`; returns sigma.
    public static func forward(weightOrig w: UnsafePointer<Float>, rows: Int, cols: Int,
                               u: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                               powerIteration: Bool, normalized: UnsafeMutablePointer<Float>) -> Float {
        let eps = Double(TorchConstants.spectralNormEps)
        if powerIteration {
            // v = normalize(W^T u)
            var vt = [Double](repeating: 0, count: cols)
            for r in 0..<rows {
                let ur = Double(u[r]), row = w + r * cols
                for c in 0..<cols { vt[c] += Double(row[c]) * ur }
            }
            let vn = max(vt.reduce(0) { $0 + $1 * $1 }.squareRoot(), eps)
            for c in 0..<cols { v[c] = Float(vt[c] / vn) }
            // u = normalize(W v)
            let wv = matVec(w, rows, cols, v)
            let un = max(wv.reduce(0) { $0 + $1 * $1 }.squareRoot(), eps)
            for r in 0..<rows { u[r] = Float(wv[r] / un) }
        }
        let wv = matVec(w, rows, cols, v)
        var sigmaD = 0.0
        for r in 0..<rows { sigmaD += Double(u[r]) * wv[r] }
        let sigma = Float(sigmaD)
        for i in 0..<(rows * cols) { normalized[i] = w[i] / sigma }
        return sigma
    }

    /// dWorig += G / sigma - (sum(G * Worig) / sigma^2) * u v^T, G = dL/d(W/sigma).
    public static func backward(gradNormalized g: UnsafePointer<Float>, weightOrig w: UnsafePointer<Float>,
                                rows: Int, cols: Int, u: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                sigma: Float, gradOrig: UnsafeMutablePointer<Float>) {
        var gw = 0.0
        for i in 0..<(rows * cols) { gw += Double(g[i]) * Double(w[i]) }
        let s = Double(sigma)
        let coef = Float(gw / (s * s))   // term 2: through sigma
        for r in 0..<rows {
            let ur = u[r] * coef
            for c in 0..<cols {
                let i = r * cols + c
                gradOrig[i] += g[i] / sigma - ur * v[c]   // term 1: direct
            }
        }
    }

    private static func matVec(_ w: UnsafePointer<Float>, _ rows: Int, _ cols: Int, _ v: UnsafePointer<Float>) -> [Double] {
        var out = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
            let row = w + r * cols
            var acc = 0.0
            for c in 0..<cols { acc += Double(row[c]) * Double(v[c]) }
            out[r] = acc
        }
        return out
    }
}
