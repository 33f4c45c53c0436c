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

/// Samples per Winograd group: the transformed input (16 x Cin x tiles) within the budget.
@inline(__always)
func winogradGroupSize(_ g: ConvGeometry, cout: Int, samples: Int, budget: Int) -> Int {
    let perSample = 16 * max(g.cin, cout) * WinogradTiles(g).perSample
    return max(1, min(samples, budget / max(perSample, 1)))
}

/// Floats to keep a convolution's transformed input V from forward to backward, which then
/// skips recomputing it: non-nil when the convolution uses Winograd and V of all `samples`
/// fits the workspace budget (otherwise backward recomputes V group by group).
public func winogradSavedInputCount(cout: Int, geometry g: ConvGeometry, samples: Int, workspace: Workspace,
                                    algorithm: ConvAlgorithm? = nil) -> Int? {
    guard usesWinograd(g, algorithm ?? workspace.convAlgorithm),
          winogradGroupSize(g, cout: cout, samples: samples, budget: workspace.columnBudget) >= samples else { return nil }
    return 16 * g.cin * samples * WinogradTiles(g).perSample
}

// Workspace slots: 0 transformed input V (reused for dV), 1 M / dM, 2 U, 3 dU, 4 scratch.
// A saved V (see winogradSavedInputCount) replaces slot 0, with all samples in one group.

func winogradForward(x: Tensor, weight: UnsafePointer<Float>, weightScale: Float, bias: UnsafePointer<Float>?,
                     cout: Int, geometry g: ConvGeometry, y: Tensor, workspace: Workspace,
                     savedInput: UnsafeMutablePointer<Float>?) {
    let tiles = WinogradTiles(g), cin = g.cin
    let u = workspace.buffer(2, count: 16 * cout * cin)
    spade_winograd_filter(weight, u, cout, cin)
    let scratch = workspace.buffer(4, count: spade_winograd_scratch(g.h, g.w))
    let group = savedInput == nil ? winogradGroupSize(g, cout: cout, samples: x.n, budget: workspace.columnBudget) : x.n
    let v = savedInput ?? workspace.buffer(0, count: 16 * cin * group * tiles.perSample)
    let m = workspace.buffer(1, count: 16 * cout * group * tiles.perSample)
    var n0 = 0
    while n0 < x.n {
        let gs = min(group, x.n - n0), t = gs * tiles.perSample
        spade_winograd_input(x.sample(n0), v, gs, cin, g.h, g.w, scratch)
        for k in 0..<16 {
            sgemm(m: cout, n: t, k: cin, alpha: weightScale, a: u + k * cout * cin, lda: cin,
                  b: v + k * cin * t, ldb: t, beta: 0, c: m + k * cout * t, ldc: t)
        }
        spade_winograd_output(m, bias, y.sample(n0), gs, cout, g.h, g.w, scratch)
        n0 += gs
    }
}

/// dweight (w.r.t. the scaled weight; accumulated or overwritten) and dx (accumulated);
/// either may be nil. `savedInput` is forward's V (used when dy covers all samples;
/// overwritten with dV).
func winogradBackward(x: Tensor, weight: UnsafePointer<Float>, weightScale: Float, cout: Int, geometry g: ConvGeometry,
                      dy: Tensor, dweight: UnsafeMutablePointer<Float>?, dx: Tensor?, workspace: Workspace,
                      savedInput: UnsafeMutablePointer<Float>?, accumulateWeightGradient: Bool) {
    let tiles = WinogradTiles(g), cin = g.cin
    let scratch = workspace.buffer(4, count: spade_winograd_scratch(g.h, g.w))
    let saved = dy.n == x.n ? savedInput : nil
    let group = saved == nil ? winogradGroupSize(g, cout: cout, samples: dy.n, budget: workspace.columnBudget) : dy.n
    let v = saved ?? workspace.buffer(0, count: 16 * cin * group * tiles.perSample)
    let dm = workspace.buffer(1, count: 16 * cout * group * tiles.perSample)
    var u: UnsafeMutablePointer<Float>? = nil
    if dx != nil {
        u = workspace.buffer(2, count: 16 * cout * cin)
        spade_winograd_filter(weight, u, cout, cin)
    }
    let du = dweight == nil ? nil : workspace.buffer(3, count: 16 * cout * cin)
    var n0 = 0
    while n0 < dy.n {
        let gs = min(group, dy.n - n0), t = gs * tiles.perSample
        spade_winograd_output_grad(dy.sample(n0), dm, gs, cout, g.h, g.w, scratch)
        if let du {
            // dU_k[Cout, Cin] = dM_k[Cout, T] * V_k[Cin, T]^T; summed over groups in dU, then G^T dU G.
            if saved == nil { spade_winograd_input(x.sample(n0), v, gs, cin, g.h, g.w, scratch) }
            for k in 0..<16 {
                sgemm(transB: true, m: cout, n: cin, k: t, a: dm + k * cout * t, lda: t, b: v + k * cin * t, ldb: t,
                      beta: n0 == 0 ? 0 : 1, c: du + k * cout * cin, ldc: cin)
            }
        }
        if let dx, let u {
            // dV_k[Cin, T] = U_k^T * dM_k (in V's buffer), folded back: dx += B dV B^T.
            for k in 0..<16 {
                sgemm(transA: true, m: cin, n: t, k: cout, alpha: weightScale, a: u + k * cout * cin, lda: cin,
                      b: dm + k * cout * t, ldb: t, beta: 0, c: v + k * cin * t, ldc: t)
            }
            spade_winograd_input_grad(v, dx.sample(n0), gs, cin, g.h, g.w, scratch)
        }
        n0 += gs
    }
    if let dweight, let du { spade_winograd_filter_grad(du, dweight, cout, cin, accumulateWeightGradient ? 1 : 0) }
}

/// The GEMMs `winogradForward` + `winogradBackward` issue for `samples` samples.
func winogradGEMMShapes(cout: Int, geometry g: ConvGeometry, samples: Int, workspace: Workspace) -> [GEMMShape] {
    let tiles = WinogradTiles(g)
    let group = winogradGroupSize(g, cout: cout, samples: samples, budget: workspace.columnBudget)
    var shapes: [GEMMShape] = []
    for n0 in stride(from: 0, to: samples, by: group) {
        let t = min(group, samples - n0) * tiles.perSample
        for _ in 0..<16 {
            shapes.append(GEMMShape(m: cout, n: t, k: g.cin, transA: false, transB: false))
            shapes.append(GEMMShape(m: cout, n: g.cin, k: t, transA: false, transB: true))
            shapes.append(GEMMShape(m: g.cin, n: t, k: cout, transA: true, transB: false))
        }
    }
    return shapes
}
