import CKernels

/// Convolution as im2col + one GEMM (forward) and two GEMMs + col2im (backward).
///
/// Samples are unfolded in groups so that small feature maps still give wide
/// GEMMs: a group of G samples yields col[K, G*P] (K = Cin*k*k, P = outH*outW)
/// and one GEMM  Y[Cout, G*P] = W[Cout, K] * col. With one sample per group the
/// GEMM writes the NCHW output directly; otherwise the result is staged and
/// scattered. 1x1 stride-1 convolutions skip im2col: X itself is col.

/// Samples per im2col group: as many as fit the workspace budget, at least 1.
@inline(__always)
func groupSize(_ g: ConvGeometry, samples: Int, budget: Int) -> Int {
    let perSample = g.colRows * g.outH * g.outW
    return max(1, min(samples, budget / max(perSample, 1)))
}

@inline(__always)
func isPointwise(_ g: ConvGeometry) -> Bool { g.kernel == 1 && g.stride == 1 && g.pad == 0 }

/// The path that computes a convolution: "winograd", "pointwise" (1x1: X is its own
/// column matrix) or "im2col" (for benchmarks and logs).
public func convPathName(_ g: ConvGeometry, _ algorithm: ConvAlgorithm) -> String {
    usesWinograd(g, algorithm) ? "winograd" : isPointwise(g) ? "pointwise" : "im2col"
}

/// y = conv(x, weightScale * weight) + bias.  x (N, Cin, H, W), weight (Cout, Cin, k, k),
/// y (N, Cout, outH, outW). The scale rides on the GEMM's alpha (spectral norm's 1/sigma),
/// so a scaled copy of the weight is never materialised. `algorithm` overrides the workspace's.
/// `winogradInput` (`winogradSavedInputCount` floats, or nil) keeps the Winograd-transformed
/// input for `convBackward`.
public func convForward(x: Tensor, weight: UnsafePointer<Float>, weightScale: Float = 1, bias: UnsafePointer<Float>?,
                        cout: Int, geometry g: ConvGeometry, y: Tensor, workspace: Workspace,
                        algorithm: ConvAlgorithm? = nil, winogradInput: UnsafeMutablePointer<Float>? = nil) {
    precondition(x.c == g.cin && x.h == g.h && x.w == g.w && y.n == x.n && y.c == cout
                 && y.h == g.outH && y.w == g.outW, "conv shapes")
    if usesWinograd(g, algorithm ?? workspace.convAlgorithm) {
        winogradForward(x: x, weight: weight, weightScale: weightScale, bias: bias, cout: cout, geometry: g, y: y,
                        workspace: workspace, savedInput: winogradInput)
        return
    }
    let p = g.outH * g.outW, k = g.colRows
    // A GEMM writing straight into y starts from the bias (beta 1): OpenBLAS would otherwise
    // zero-fill y for beta 0 and the bias take another pass.
    if isPointwise(g) {
        for n in 0..<x.n {
            let beta: Float = fillWithBias(y.sample(n), bias, cout: cout, plane: p) ? 1 : 0
            sgemm(m: cout, n: p, k: k, alpha: weightScale, a: weight, lda: k, b: x.sample(n), ldb: p, beta: beta, c: y.sample(n), ldc: p)
        }
        return
    }
    let group = groupSize(g, samples: x.n, budget: workspace.columnBudget)
    let col = workspace.buffer(0, count: k * group * p)
    var n0 = 0
    while n0 < x.n {
        let gs = min(group, x.n - n0)
        im2col(x.sample(n0), samples: gs, g, col: col)
        if gs == 1 {
            let beta: Float = fillWithBias(y.sample(n0), bias, cout: cout, plane: p) ? 1 : 0
            sgemm(m: cout, n: p, k: k, alpha: weightScale, a: weight, lda: k, b: col, ldb: p, beta: beta, c: y.sample(n0), ldc: p)
        } else {
            let staged = workspace.buffer(1, count: cout * gs * p)
            sgemm(m: cout, n: gs * p, k: k, alpha: weightScale, a: weight, lda: k, b: col, ldb: gs * p, beta: 0, c: staged, ldc: gs * p)
            // staged (Cout, gs, P) -> y (gs, Cout, P), plus the bias
            for s in 0..<gs {
                for o in 0..<cout {
                    let src = staged + (o * gs + s) * p, dst = y.sample(n0 + s) + o * p
                    if let bias {
                        let b = bias[o]
                        for i in 0..<p { dst[i] = src[i] + b }
                    } else {
                        dst.update(from: src, count: p)
                    }
                }
            }
        }
        n0 += gs
    }
}

/// Fills one sample's (Cout, P) output with its bias; false (nothing written) without one.
@inline(__always)
func fillWithBias(_ y: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, cout: Int, plane p: Int) -> Bool {
    guard let bias else { return false }
    for o in 0..<cout { (y + o * p).update(repeating: bias[o], count: p) }
    return true
}

/// Backward of `convForward`. Accumulates (`+=`) into whichever of dweight,
/// dbias, dx is given; nil means "not needed" and skips that work. With
/// `accumulateParameterGradients: false`, dweight and dbias are overwritten instead
/// (no need to zero them first). dweight is the gradient w.r.t. the scaled weight
/// (weightScale * weight).
/// dy may cover only the first dy.n samples of x (the rest get no gradient).
/// `winogradInput` is what `convForward` kept there (consumed: overwritten).
public func convBackward(x: Tensor, weight: UnsafePointer<Float>, weightScale: Float = 1, cout: Int, geometry g: ConvGeometry,
                         dy: Tensor, dweight: UnsafeMutablePointer<Float>?, dbias: UnsafeMutablePointer<Float>?,
                         dx: Tensor?, workspace: Workspace, algorithm: ConvAlgorithm? = nil,
                         winogradInput: UnsafeMutablePointer<Float>? = nil, accumulateParameterGradients: Bool = true) {
    precondition(dy.c == cout && dy.h == g.outH && dy.w == g.outW && dy.n <= x.n, "conv backward shapes")
    if let dx { precondition(dx.n == dy.n && dx.c == g.cin && dx.h == g.h && dx.w == g.w) }
    precondition(dy.n > 0, "conv backward without samples")
    let p = g.outH * g.outW, k = g.colRows
    let overwrite = !accumulateParameterGradients
    if let dbias {
        for n in 0..<dy.n {
            for o in 0..<cout {
                let sum = Float(spade_sum(dy.sample(n) + o * p, p))   // long sums: accumulated in double
                dbias[o] = overwrite && n == 0 ? sum : dbias[o] + sum
            }
        }
    }
    if dweight == nil && dx == nil { return }
    if usesWinograd(g, algorithm ?? workspace.convAlgorithm) {
        winogradBackward(x: x, weight: weight, weightScale: weightScale, cout: cout, geometry: g, dy: dy,
                         dweight: dweight, dx: dx, workspace: workspace, savedInput: winogradInput,
                         accumulateWeightGradient: accumulateParameterGradients)
        return
    }
    if isPointwise(g) {
        for n in 0..<dy.n {
            // dW[Cout, Cin] += dY_n[Cout, P] * X_n[Cin, P]^T ;  dX_n[Cin, P] += W^T * dY_n
            if let dweight {
                sgemm(transB: true, m: cout, n: k, k: p, a: dy.sample(n), lda: p, b: x.sample(n), ldb: p,
                      beta: overwrite && n == 0 ? 0 : 1, c: dweight, ldc: k)
            }
            if let dx {
                sgemm(transA: true, m: k, n: p, k: cout, alpha: weightScale, a: weight, lda: k, b: dy.sample(n), ldb: p,
                      beta: 1, c: dx.sample(n), ldc: p)
            }
        }
        return
    }
    let group = groupSize(g, samples: dy.n, budget: workspace.columnBudget)
    let col = workspace.buffer(0, count: k * group * p)
    var n0 = 0
    while n0 < dy.n {
        let gs = min(group, dy.n - n0)
        // dY of the group as one (Cout, gs*P) matrix.
        let dyGroup: UnsafeMutablePointer<Float>
        if gs == 1 {
            dyGroup = dy.sample(n0)
        } else {
            dyGroup = workspace.buffer(1, count: cout * gs * p)
            for s in 0..<gs {
                for o in 0..<cout {
                    (dyGroup + (o * gs + s) * p).update(from: dy.sample(n0 + s) + o * p, count: p)
                }
            }
        }
        let cols = gs * p
        if let dweight {
            // term 1: dW[Cout, K] += dY[Cout, cols] * col[K, cols]^T
            im2col(x.sample(n0), samples: gs, g, col: col)
            sgemm(transB: true, m: cout, n: k, k: cols, a: dyGroup, lda: cols, b: col, ldb: cols,
                  beta: overwrite && n0 == 0 ? 0 : 1, c: dweight, ldc: k)
        }
        if let dx {
            // term 2: dcol[K, cols] = W^T * dY, folded back by col2im (reuses the col buffer)
            sgemm(transA: true, m: k, n: cols, k: cout, alpha: weightScale, a: weight, lda: k, b: dyGroup, ldb: cols,
                  beta: 0, c: col, ldc: cols)
            col2imAdd(col, samples: gs, g, dx: dx.sample(n0))
        }
        n0 += gs
    }
}

/// Direct 7-loop convolution: the slow, obviously-correct reference the tests
/// and benchmarks compare the GEMM path with.
public func convForwardNaive(x: Tensor, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                             cout: Int, geometry g: ConvGeometry, y: Tensor) {
    let k = g.kernel
    for n in 0..<x.n {
        for o in 0..<cout {
            for oy in 0..<g.outH {
                for ox in 0..<g.outW {
                    var acc: Double = bias.map { Double($0[o]) } ?? 0
                    for c in 0..<g.cin {
                        for ky in 0..<k {
                            let iy = oy * g.stride + ky - g.pad
                            if iy < 0 || iy >= g.h { continue }
                            for kx in 0..<k {
                                let ix = ox * g.stride + kx - g.pad
                                if ix < 0 || ix >= g.w { continue }
                                acc += Double(weight[((o * g.cin + c) * k + ky) * k + kx])
                                    * Double(x.sample(n)[(c * g.h + iy) * g.w + ix])
                            }
                        }
                    }
                    y.sample(n)[(o * g.outH + oy) * g.outW + ox] = Float(acc)
                }
            }
        }
    }
}

/// One GEMM a convolution performs: C[m, n] (+)= op(A)[m, k] * op(B)[k, n].
public struct GEMMShape: Equatable, Sendable {
    public let m: Int, n: Int, k: Int, transA: Bool, transB: Bool
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// The GEMMs `convForward` + `convBackward` (weights and input) issue for `samples`
/// samples with `algorithm` (nil: the workspace's): what a benchmark times raw to see
/// the overhead of im2col and friends. With `.im2col` these are the convolution's
/// GEMMs in the classic unfolded form, the baseline any algorithm is measured against.
public func convGEMMShapes(cout: Int, geometry g: ConvGeometry, samples: Int, workspace: Workspace,
                           algorithm: ConvAlgorithm? = nil) -> [GEMMShape] {
    if usesWinograd(g, algorithm ?? workspace.convAlgorithm) {
        return winogradGEMMShapes(cout: cout, geometry: g, samples: samples, workspace: workspace)
    }
    let p = g.outH * g.outW, k = g.colRows
    var shapes: [GEMMShape] = []
    let groups: [Int]
    if isPointwise(g) {
        groups = [Int](repeating: 1, count: samples)
    } else {
        let gsz = groupSize(g, samples: samples, budget: workspace.columnBudget)
        groups = stride(from: 0, to: samples, by: gsz).map { min(gsz, samples - $0) }
    }
    for gs in groups {
        let cols = gs * p
        shapes.append(GEMMShape(m: cout, n: cols, k: k, transA: false, transB: false))   // forward
        shapes.append(GEMMShape(m: cout, n: k, k: cols, transA: false, transB: true))    // dW
        shapes.append(GEMMShape(m: k, n: cols, k: cout, transA: true, transB: false))    // dcol
    }
    return shapes
}
