import CKernels

/// 3x3 stride-1 pad-1 convolutions by Winograd F(2x2, 3x3): every 2x2 output tile from a
/// 4x4 input tile with 16 multiplies instead of 36, i.e. 16 GEMMs over channels
/// (Cout x Cin times Cin x tiles) with 2.25x fewer flops than the im2col GEMM, and no
/// 9x-unfolded column matrix. The backward passes are the same 16 GEMMs transposed
/// (weights: dM V^T, input: U^T dM). The transforms live in CKernels/Winograd.c.
///
/// Applies to 3x3/1/1 convolutions only. `.automatic` uses it where it pays: maps large
/// enough that the 16 GEMMs stay wide; smaller maps keep im2col's one wide GEMM.
public enum ConvAlgorithm: Sendable {
    case automatic, im2col, winograd
}

@inline(__always)
public func usesWinograd(_ g: ConvGeometry, _ algorithm: ConvAlgorithm) -> Bool {
    guard g.kernel == 3 && g.stride == 1 && g.pad == 1 else { return false }
    switch algorithm {
    case .automatic: return g.h * g.w >= 1024 && min(g.h, g.w) >= 8   // `bench conv`: wins from 32x32, ~10% slower at 16x16
    case .im2col: return false
    case .winograd: return true
    }
}

struct WinogradTiles {
    let th: Int, tw: Int
    init(_ g: ConvGeometry) { th = (g.h + 1) / 2; tw = (g.w + 1) / 2 }
    var perSample: Int { th * tw }
}

/// Floats of one block's V and M together (16 x (Cin + Cout) x tiles): about 1 MiB, so that
/// what a transform writes is still in L2 when the GEMMs read it, and the GEMM outputs when
/// the next transform reads them (OpenBLAS also zero-fills each output for beta = 0 first).
let winogradBlockFloats = 1 << 18

/// Tile rows per block (at least one; a tighter workspace budget makes blocks smaller).
@inline(__always)
func winogradBlockRows(_ g: ConvGeometry, cout: Int, workspace: Workspace) -> Int {
    let tiles = WinogradTiles(g)
    let floats = min(winogradBlockFloats, workspace.columnBudget)
    return max(1, min(tiles.th, floats / (16 * (g.cin + cout) * tiles.tw)))
}

/// Floats to keep a convolution's transformed input V from forward to backward, which then
/// skips recomputing it: non-nil when the convolution uses Winograd and V of all `samples`
/// fits the workspace budget.
public func winogradSavedInputCount(cout: Int, geometry g: ConvGeometry, samples: Int, workspace: Workspace,
                                    algorithm: ConvAlgorithm? = nil) -> Int? {
    guard usesWinograd(g, algorithm ?? workspace.convAlgorithm) else { return nil }
    let count = 16 * g.cin * samples * WinogradTiles(g).perSample
    return count <= workspace.columnBudget ? count : nil
}

// Workspace slots: 0 one block's V (also its dV), 1 M / dM, 2 U, 3 dU, 4 scratch.
// A saved V holds every block of every sample in order: sample s, tile rows from ty0 at
// 16 * Cin * (s * th * tw + ty0 * tw).

func winogradForward(x: Tensor, weight: UnsafePointer<Float>, weightScale: Float, bias: UnsafePointer<Float>?,
                     cout: Int, geometry g: ConvGeometry, y: Tensor, workspace: Workspace,
                     savedInput: UnsafeMutablePointer<Float>?) {
    let tiles = WinogradTiles(g), cin = g.cin
    let u = workspace.buffer(2, count: 16 * cout * cin)
    spade_winograd_filter(weight, u, cout, cin)
    let scratch = workspace.buffer(4, count: spade_winograd_scratch(g.h, g.w))
    let rows = winogradBlockRows(g, cout: cout, workspace: workspace)
    let vBlock = workspace.buffer(0, count: 16 * cin * rows * tiles.tw)
    let m = workspace.buffer(1, count: 16 * cout * rows * tiles.tw)
    for s in 0..<x.n {
        for ty0 in stride(from: 0, to: tiles.th, by: rows) {
            let ty1 = min(ty0 + rows, tiles.th), t = (ty1 - ty0) * tiles.tw
            let v = savedInput.map { $0 + 16 * cin * (s * tiles.perSample + ty0 * tiles.tw) } ?? vBlock
            spade_winograd_input(x.sample(s), v, cin, g.h, g.w, ty0, ty1, scratch)
            for k in 0..<16 {
                sgemm(m: cout, n: t, k: cin, alpha: weightScale, a: u + k * cout * cin, lda: cin,
                      b: v + k * cin * t, ldb: t, beta: 0, c: m + k * cout * t, ldc: t)
            }
            spade_winograd_output(m, bias, y.sample(s), cout, g.h, g.w, ty0, ty1, scratch)
        }
    }
}

/// dweight (w.r.t. the scaled weight; accumulated or overwritten) and dx (accumulated);
/// either may be nil. `savedInput` is forward's V for x's samples (dy's are the first of them).
func winogradBackward(x: Tensor, weight: UnsafePointer<Float>, weightScale: Float, cout: Int, geometry g: ConvGeometry,
                      dy: Tensor, dweight: UnsafeMutablePointer<Float>?, dx: Tensor?, workspace: Workspace,
                      savedInput: UnsafeMutablePointer<Float>?, accumulateWeightGradient: Bool) {
    let tiles = WinogradTiles(g), cin = g.cin
    let scratch = workspace.buffer(4, count: spade_winograd_scratch(g.h, g.w))
    let rows = winogradBlockRows(g, cout: cout, workspace: workspace)
    let vBlock = workspace.buffer(0, count: 16 * cin * rows * tiles.tw)
    let dm = workspace.buffer(1, count: 16 * cout * rows * tiles.tw)
    var u: UnsafeMutablePointer<Float>? = nil
    if dx != nil {
        u = workspace.buffer(2, count: 16 * cout * cin)
        spade_winograd_filter(weight, u, cout, cin)
    }
    let du = dweight == nil ? nil : workspace.buffer(3, count: 16 * cout * cin)
    for s in 0..<dy.n {
        for ty0 in stride(from: 0, to: tiles.th, by: rows) {
            let ty1 = min(ty0 + rows, tiles.th), t = (ty1 - ty0) * tiles.tw
            spade_winograd_output_grad(dy.sample(s), dm, cout, g.h, g.w, ty0, ty1, scratch)
            if let du {
                // dU_k[Cout, Cin] = sum over blocks of dM_k[Cout, T] * V_k[Cin, T]^T, then G^T dU G.
                let v: UnsafeMutablePointer<Float>
                if let savedInput {
                    v = savedInput + 16 * cin * (s * tiles.perSample + ty0 * tiles.tw)
                } else {
                    v = vBlock
                    spade_winograd_input(x.sample(s), v, cin, g.h, g.w, ty0, ty1, scratch)
                }
                let first = s == 0 && ty0 == 0
                for k in 0..<16 {
                    sgemm(transB: true, m: cout, n: cin, k: t, a: dm + k * cout * t, lda: t, b: v + k * cin * t, ldb: t,
                          beta: first ? 0 : 1, c: du + k * cout * cin, ldc: cin)
                }
            }
            if let dx, let u {
                // dV_k[Cin, T] = U_k^T * dM_k, folded back: dx += B dV B^T.
                for k in 0..<16 {
                    sgemm(transA: true, m: cin, n: t, k: cout, alpha: weightScale, a: u + k * cout * cin, lda: cin,
                          b: dm + k * cout * t, ldb: t, beta: 0, c: vBlock + k * cin * t, ldc: t)
                }
                spade_winograd_input_grad(vBlock, dx.sample(s), cin, g.h, g.w, ty0, ty1, scratch)
            }
        }
    }
    if let dweight, let du { spade_winograd_filter_grad(du, dweight, cout, cin, accumulateWeightGradient ? 1 : 0) }
}

/// The GEMMs `winogradForward` + `winogradBackward` issue for `samples` samples.
func winogradGEMMShapes(cout: Int, geometry g: ConvGeometry, samples: Int, workspace: Workspace) -> [GEMMShape] {
    let tiles = WinogradTiles(g)
    let rows = winogradBlockRows(g, cout: cout, workspace: workspace)
    var shapes: [GEMMShape] = []
    for _ in 0..<samples {
        for ty0 in stride(from: 0, to: tiles.th, by: rows) {
            let t = (min(ty0 + rows, tiles.th) - ty0) * tiles.tw
            for _ in 0..<16 {
                shapes.append(GEMMShape(m: cout, n: t, k: g.cin, transA: false, transB: false))
                shapes.append(GEMMShape(m: cout, n: g.cin, k: t, transA: false, transB: true))
                shapes.append(GEMMShape(m: g.cin, n: t, k: cout, transA: true, transB: false))
            }
        }
    }
    return shapes
}
