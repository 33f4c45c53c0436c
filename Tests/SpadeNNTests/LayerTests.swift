import XCTest
import SafeTensors
import SpadeCore
import SpadeNN
import SpadeTestSupport

/// Every primitive against reference/{conv2d,spectral_norm,norms,spade,resblock,losses,adam}.safetensors.
final class LayerTests: XCTestCase {
    func cases(_ fx: SafeTensorsFile, prefix: String = "", suffix: String) -> [String] {
        Set(fx.names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) }).sorted()
    }

    func testConv2dAllCasesForwardBackward() throws {
        let fx = try Fixtures.load("conv2d")
        let cs = cases(fx, suffix: ".weight")
        XCTAssertEqual(cs.count, 8)
        // Both algorithms for 3x3 stride-1 cases (Winograd is chosen automatically only on maps >= 8x8).
        for c in cs { for algorithm in [ConvAlgorithm.im2col, .winograd] {
            let arena = Arena(), ws = Workspace(convAlgorithm: algorithm)
            let x = try fx.tensor(c + ".x", arena)
            let wShape = try fx.shape(c + ".weight")
            let stride = try fx.i64(c + ".stride"), pad = try fx.i64(c + ".padding")
            let state = ModelState()
            let hasBias = fx[c + ".bias"] != nil
            let conv = Conv2d(state, "", cin: wShape[1], cout: wShape[0], kernel: wShape[2], stride: Int(stride[0]),
                              pad: Int(pad[0]), bias: hasBias)
            state.finalize()
            state.assign("weight", try fx.f(c + ".weight"))
            if hasBias { state.assign("bias", try fx.f(c + ".bias")) }
            let ctx = Context(arena: arena, workspace: ws)
            let y = conv.forward(x, mode: .train, ctx)
            XCTAssertEqual(y.shape, try fx.shape(c + ".y"), c)
            assertClose(y, try fx.f(c + ".y"), rel: Tol.op, "\(c).y \(algorithm)")
            // the naive 7-loop reference agrees too
            let yNaive = arena.tensor(y.n, y.c, y.h, y.w)
            convForwardNaive(x: x, weight: state.value(conv.weight), bias: conv.bias.map { UnsafePointer(state.value($0)) },
                             cout: conv.cout, geometry: conv.geometry(h: x.h, w: x.w), y: yNaive)
            assertClose(y.toArray(), yNaive.toArray(), rel: 1e-6, "\(c).y naive")
            let dy = try fx.tensor(c + ".dy", arena)
            let dx = arena.zeroTensor(like: x)
            conv.backward(dy, dx: dx, parameterGradients: true, ctx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx \(algorithm)")
            assertClose(state.gradient(named: "weight")!, try fx.f(c + ".dweight"), rel: Tol.op, "\(c).dweight \(algorithm)")
            if hasBias { assertClose(state.gradient(named: "bias")!, try fx.f(c + ".dbias"), rel: Tol.op, "\(c).dbias") }
        } }
    }

    func testConvGroupingAndPointwisePathsAgree() throws {
        // Same convolution with a workspace budget forcing 1-sample groups vs all samples in one group.
        // dX also against its definition, with more and fewer output than input channels and pads
        // below, at and above (k-1)/2.
        for (k, s, p, cout) in [(3, 1, 1, 4), (4, 2, 2, 4), (1, 1, 0, 4), (4, 1, 2, 4), (3, 1, 1, 2), (4, 1, 2, 3), (3, 1, 0, 2), (5, 1, 4, 1)] {
            let g = ConvGeometry(cin: 3, kernel: k, stride: s, pad: p, h: 7, w: 5)
            var rng = SplitMix64(seed: UInt64(k * 1000 + s * 100 + p * 10 + cout))
            let xs = (0..<(3 * 3 * 35)).map { _ in Float.random(in: -1...1, using: &rng) }
            let ws = (0..<(cout * 3 * k * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let arena = Arena()
            let x = arena.tensor(3, 3, 7, 5); x.copy(from: xs)
            var outs: [[Float]] = [], dxs: [[Float]] = [], dws: [[Float]] = []
            for budget in [1, 1 << 20] { for algorithm in [ConvAlgorithm.im2col, .winograd] {
                let w = Workspace(columnBudgetFloats: budget, convAlgorithm: algorithm)
                let y = arena.tensor(3, cout, g.outH, g.outW)
                convForward(x: x, weight: ws, bias: nil, cout: cout, geometry: g, y: y, workspace: w)
                outs.append(y.toArray())
                let dx = arena.zeroTensor(like: x)
                var dw = [Float](repeating: 0, count: ws.count)
                convBackward(x: x, weight: ws, cout: cout, geometry: g, dy: y, dweight: &dw, dbias: nil, dx: dx, workspace: w)
                dxs.append(dx.toArray()); dws.append(dw)
            } }
            // dX by its definition, in double: every output position's taps scattered back.
            var dxNaive = [Double](repeating: 0, count: xs.count)
            let y = outs[0]
            for n in 0..<3 { for co in 0..<cout { for oy in 0..<g.outH { for ox in 0..<g.outW {
                let d = Double(y[((n * cout + co) * g.outH + oy) * g.outW + ox])
                for ci in 0..<3 { for ky in 0..<k { for kx in 0..<k {
                    let iy = oy * s - p + ky, ix = ox * s - p + kx
                    guard iy >= 0 && iy < 7 && ix >= 0 && ix < 5 else { continue }
                    dxNaive[((n * 3 + ci) * 7 + iy) * 5 + ix] += Double(ws[((co * 3 + ci) * k + ky) * k + kx]) * d
                } } }
            } } } }
            assertClose(dxs[0], dxNaive.map { Float($0) }, rel: 1e-6, "k\(k) s\(s) p\(p) \(cout) dx vs its definition")
            for i in 1..<outs.count {
                assertClose(outs[i], outs[0], rel: 1e-6, "k\(k) y, variant \(i)")
                assertClose(dxs[i], dxs[0], rel: 1e-6, "k\(k) dx, variant \(i)")
                assertClose(dws[i], dws[0], rel: 1e-6, "k\(k) dw, variant \(i)")
            }
        }
    }

    /// Winograd F(2x2, 3x3) against the double-precision naive convolution and the im2col
    /// path on shapes the fixtures do not have: odd and even sizes (partial 2x2 tiles),
    /// 1-pixel-wide maps, more output than input channels and the reverse, a spectral-norm
    /// style weight scale, dy covering fewer samples than x (the kept transformed input is then
    /// not used), sample groups, and gradients accumulated
    /// into non-zero buffers. Bound 2e-6 relative: the transforms only add and halve,
    /// so the error is a few float32 roundings of the largest partial sums.
    func testWinogradMatchesNaiveAndIm2col() {
        var rng = SplitMix64(seed: 7)
        func randoms(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.uniform(-1, 1)) } }
        for (n, cin, cout, h, w) in [(2, 3, 5, 9, 7), (1, 8, 4, 8, 8), (3, 2, 6, 1, 5), (2, 5, 2, 6, 1), (1, 16, 16, 13, 10)] {
            let g = ConvGeometry(cin: cin, kernel: 3, stride: 1, pad: 1, h: h, w: w)
            let arena = Arena()
            let x = arena.tensor(n, cin, h, w); x.copy(from: randoms(n * cin * h * w))
            let weight = randoms(cout * cin * 9), bias = randoms(cout), scale: Float = 0.75
            let scaled = weight.map { $0 * scale }
            let dyCount = max(1, n - 1)
            let dy = arena.tensor(dyCount, cout, h, w); dy.copy(from: randoms(dyCount * cout * h * w))
            let initialDx = randoms(dyCount * cin * h * w), initialDw = randoms(weight.count)
            var results: [(y: [Float], dx: [Float], dw: [Float])] = []
            // Winograd in one-tile-row blocks, Winograd keeping forward's transformed input, im2col.
            for (algorithm, budget, keep) in [(ConvAlgorithm.winograd, 1, false), (.winograd, 1 << 20, true), (.im2col, 1 << 20, false)] {
                let ws = Workspace(columnBudgetFloats: budget, convAlgorithm: algorithm)
                let saved = keep ? winogradSavedInputCount(cout: cout, geometry: g, samples: n, workspace: ws).map { arena.floats($0) } : nil
                XCTAssertEqual(saved != nil, keep)
                let y = arena.tensor(n, cout, h, w)
                convForward(x: x, weight: weight, weightScale: scale, bias: bias, cout: cout, geometry: g, y: y, workspace: ws,
                            winogradInput: saved)
                let dx = arena.tensor(dyCount, cin, h, w); dx.copy(from: initialDx)
                var dw = initialDw
                convBackward(x: x, weight: weight, weightScale: scale, cout: cout, geometry: g, dy: dy, dweight: &dw,
                             dbias: nil, dx: dx, workspace: ws, winogradInput: saved)
                results.append((y.toArray(), dx.toArray(), dw))
            }
            let label = "n\(n) \(cin)->\(cout) \(h)x\(w)"
            let yNaive = arena.tensor(n, cout, h, w)
            convForwardNaive(x: x, weight: scaled, bias: bias, cout: cout, geometry: g, y: yNaive)
            assertClose(results[0].y, yNaive.toArray(), rel: 2e-6, "\(label) winograd y vs naive")
            for i in 1...2 {
                assertClose(results[i].y, results[0].y, rel: 2e-6, "\(label) y, variant \(i)")
                assertClose(results[i].dx, results[0].dx, rel: 2e-6, "\(label) dx, variant \(i)")
                assertClose(results[i].dw, results[0].dw, rel: 2e-6, "\(label) dw, variant \(i)")
            }
        }
    }

    /// `accumulateParameterGradients: false` overwrites dweight and dbias: starting from NaN
    /// (any read of the old value would show), every path (im2col in sample groups, Winograd
    /// in groups, pointwise, strided) gives what accumulating into zeros gives.
    func testParameterGradientsOverwriteOnRequest() {
        var rng = SplitMix64(seed: 11)
        for (k, s, p, algorithm) in [(3, 1, 1, ConvAlgorithm.im2col), (3, 1, 1, .winograd), (1, 1, 0, .automatic), (4, 2, 1, .automatic)] {
            let g = ConvGeometry(cin: 3, kernel: k, stride: s, pad: p, h: 9, w: 8)
            let arena = Arena(), ws = Workspace(columnBudgetFloats: 1, convAlgorithm: algorithm)   // 1-sample groups
            let x = arena.tensor(3, 3, 9, 8); x.copy(from: (0..<(3 * 3 * 72)).map { _ in Float(rng.uniform(-1, 1)) })
            let weight = (0..<(4 * 3 * k * k)).map { _ in Float(rng.uniform(-1, 1)) }
            let dy = arena.tensor(3, 4, g.outH, g.outW); dy.copy(from: (0..<(3 * 4 * g.outH * g.outW)).map { _ in Float(rng.uniform(-1, 1)) })
            var results: [[Float]] = []
            for accumulate in [true, false] {
                var dw = [Float](repeating: accumulate ? 0 : .nan, count: weight.count)
                var db = [Float](repeating: accumulate ? 0 : .nan, count: 4)
                convBackward(x: x, weight: weight, cout: 4, geometry: g, dy: dy, dweight: &dw, dbias: &db, dx: nil,
                             workspace: ws, accumulateParameterGradients: accumulate)
                results.append(dw + db)
            }
            XCTAssertEqual(results[1], results[0], "k\(k) s\(s) \(algorithm): overwrite vs accumulate into zeros")
        }
    }

    /// A step's gradients: after beginGradients the first write overwrites (stale values are
    /// gone), later writes in the step add, and finishGradients zeroes what nobody wrote.
    func testStepGradientsOverwriteAccumulateAndZero() {
        let state = ModelState()
        let used = Conv2d(state, "used.", cin: 2, cout: 3, kernel: 3, pad: 1, spectral: true)
        let unused = Conv2d(state, "unused.", cin: 2, cout: 3, kernel: 3, pad: 1)
        state.finalize()
        var rng = SplitMix64(seed: 5)
        for p in [used.weight, unused.weight] {
            let w = state.value(p)
            for i in 0..<18 { w[i] = Float(rng.uniform(-1, 1)) }
        }
        state.floatTensor(named: "used.weight_u")!.pointer.update(repeating: 0.5, count: 3)   // u, v: any non-zero start
        state.floatTensor(named: "used.weight_v")!.pointer.update(repeating: 0.25, count: 18)
        let arena = Arena(), ctx = Context(arena: arena, workspace: Workspace())
        let x = arena.tensor(2, 2, 5, 4); x.copy(from: (0..<80).map { _ in Float(rng.uniform(-1, 1)) })
        let dy = arena.tensor(2, 3, 5, 4); dy.copy(from: (0..<120).map { _ in Float(rng.uniform(-1, 1)) })
        _ = used.forward(x, mode: .eval, ctx)
        used.backward(dy, dx: nil, parameterGradients: true, ctx)   // legacy: accumulates into the zeroed buffer
        let once = state.gradientBuffer.map { $0 }
        state.gradientBuffer.update(repeating: .nan)                 // stale garbage from an earlier step
        state.beginGradients()
        used.backward(dy, dx: nil, parameterGradients: true, ctx)
        used.backward(dy, dx: nil, parameterGradients: true, ctx)
        state.finishGradients()
        for (p, conv) in [(used.weight, "used"), (used.bias!, "used bias"), (unused.weight, "unused"), (unused.bias!, "unused bias")] {
            let entry = state.params[p.index]
            let got = Array(state.gradientBuffer[entry.offset..<(entry.offset + entry.count)])
            let expected = conv.hasPrefix("unused") ? [Float](repeating: 0, count: entry.count)
                : once[entry.offset..<(entry.offset + entry.count)].map { 2 * $0 }
            assertClose(got, expected, rel: 1e-6, "\(conv): first write overwrites, second adds, unwritten zeroed")
        }
    }

    func testSpectralNorm() throws {
        let fx = try Fixtures.load("spectral_norm")
        for c in ["train0", "train1", "train2", "eval0"] {
            let w = try fx.f(c + ".weight_orig"), shape = try fx.shape(c + ".weight_orig")
            let rows = shape[0], cols = w.count / rows
            let train = c.hasPrefix("train")
            var u = try fx.f(train ? c + ".u_before" : c + ".u"), v = try fx.f(train ? c + ".v_before" : c + ".v")
            var scratch = [Float](repeating: 0, count: rows)
            let sigma = SpectralNorm.forward(weightOrig: w, rows: rows, cols: cols, u: &u, v: &v,
                                             powerIteration: train, scratch: &scratch)
            let wsn = SpectralNorm.normalized(weightOrig: w, count: w.count, sigma: sigma)
            assertClose([sigma], try fx.f(c + ".sigma"), rel: Tol.op, "\(c).sigma")
            assertClose(wsn, try fx.f(c + ".w_sn"), rel: Tol.op, "\(c).w_sn")
            if train {
                assertClose(u, try fx.f(c + ".u_after"), rel: Tol.op, "\(c).u")
                assertClose(v, try fx.f(c + ".v_after"), rel: Tol.op, "\(c).v")
            }
            var dw = [Float](repeating: 0, count: w.count)
            SpectralNorm.backward(gradNormalized: try fx.f(c + ".dw_sn"), weightOrig: w, rows: rows, cols: cols,
                                  u: u, v: v, sigma: sigma, gradOrig: &dw)
            assertClose(dw, try fx.f(c + ".dweight_orig"), rel: Tol.op, "\(c).dweight_orig")
        }
    }

    func testBatchNormTrainEvalAndRunningStatistics() throws {
        let fx = try Fixtures.load("norms")
        for c in ["bn.case0", "bn.case1", "bn.case2", "bn.eval0"] {
            let arena = Arena(), ctx = Context(arena: arena)
            let x = try fx.tensor(c + ".x", arena)
            let state = ModelState()
            let bn = BatchNorm(state, "", channels: x.c)
            state.finalize()
            state.assign("running_mean", try fx.f(c + ".running_mean_before"))
            state.assign("running_var", try fx.f(c + ".running_var_before"))
            _ = state.setCounter(named: "num_batches_tracked", try fx.i64(c + ".num_batches_tracked_before")[0])
            let mode: Mode = c.hasSuffix("eval0") ? .eval : .train
            let y = bn.forward(x, mode: mode, ctx)
            // case2 (mean 50, std 0.1) is the README's variance-cancellation stress case: 4e-6 observed in f32.
            assertClose(y, try fx.f(c + ".y"), rel: Tol.op, "\(c).y")
            let dx = arena.zeroTensor(like: x)
            bn.backward(try fx.tensor(c + ".dy", arena), dx: dx, ctx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx")
            assertClose(state.floats(named: "running_mean")!, try fx.f(c + ".running_mean_after"), rel: Tol.op, "\(c).rm")
            assertClose(state.floats(named: "running_var")!, try fx.f(c + ".running_var_after"), rel: Tol.op, "\(c).rv")
            XCTAssertEqual(state.counter(named: "num_batches_tracked"), try fx.i64(c + ".num_batches_tracked_after")[0])
        }
    }

    func testInstanceNorm() throws {
        let fx = try Fixtures.load("norms")
        let cs = cases(fx, prefix: "in.", suffix: ".x")
        XCTAssertEqual(cs.count, 3)
        for c in cs {
            let arena = Arena(), ctx = Context(arena: arena)
            let x = try fx.tensor(c + ".x", arena)
            let norm = InstanceNorm()
            assertClose(norm.forward(x, ctx), try fx.f(c + ".y"), rel: Tol.op, "\(c).y")
            let dx = arena.zeroTensor(like: x)
            norm.backward(try fx.tensor(c + ".dy", arena), dx: dx, ctx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx")
        }
    }

    func testAvgPool() throws {
        let fx = try Fixtures.load("norms")
        let cs = cases(fx, prefix: "avgpool.", suffix: ".x")
        XCTAssertEqual(cs.count, 5)
        for c in cs {
            let arena = Arena(), ctx = Context(arena: arena)
            let x = try fx.tensor(c + ".x", arena)
            let y = Resample.avgPool(x, ctx)
            XCTAssertEqual(y.shape, try fx.shape(c + ".y"))
            assertClose(y, try fx.f(c + ".y"), rel: Tol.op, "\(c).y")
            let dx = arena.zeroTensor(like: x)
            Resample.avgPoolBackward(try fx.tensor(c + ".dy", arena), dx: dx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx")
        }
    }

    func testNearestResizeIndexTablesAndGradients() throws {
        let fx = try Fixtures.load("norms")
        let cs = cases(fx, prefix: "nearest.", suffix: ".x")
        XCTAssertGreaterThanOrEqual(cs.count, 4)
        for c in cs {
            let arena = Arena(), ctx = Context(arena: arena)
            let x = try fx.tensor(c + ".x", arena)
            let ys = try fx.shape(c + ".y")
            XCTAssertEqual(Resample.nearestIndices(output: ys[2], input: x.h).map(Int64.init), try fx.i64(c + ".src_index_h"), c)
            XCTAssertEqual(Resample.nearestIndices(output: ys[3], input: x.w).map(Int64.init), try fx.i64(c + ".src_index_w"), c)
            let y = Resample.nearest(x, h: ys[2], w: ys[3], ctx)
            XCTAssertEqual(y.toArray(), try fx.f(c + ".y"), c)  // a gather: exact
            let dx = arena.zeroTensor(like: x)
            Resample.nearestBackward(try fx.tensor(c + ".dy", arena), dx: dx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx")
        }
    }

    func testSPADEModule() throws {
        let fx = try Fixtures.load("spade")
        for c in ["case0", "case1", "eval0"] {
            let arena = Arena(), ctx = Context(arena: arena)
            let x = try fx.tensor(c + ".x", arena), seg = try fx.tensor(c + ".seg", arena)
            let hidden = try fx.shape(c + ".before.mlp_shared.0.weight")[0]
            let state = ModelState()
            let spade = SPADE(state, "", normNC: x.c, labelNC: seg.c, hidden: hidden)
            state.finalize()
            try fx.load(into: state, prefix: c + ".before.")
            let mode: Mode = c == "eval0" ? .eval : .train
            let segSized = Resample.nearest(seg, h: x.h, w: x.w, ctx)
            let y = spade.forward(x, seg: segSized, mode: mode, ctx)
            assertClose(y, try fx.f(c + ".y"), rel: Tol.op, "\(c).y")
            let dx = arena.zeroTensor(like: x)
            spade.backward(try fx.tensor(c + ".dy", arena), dx: dx, parameterGradients: true, ctx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx")
            for p in state.params {
                assertClose(state.gradient(named: p.name)!, try fx.f(c + ".grad." + p.name), rel: Tol.op, "\(c).grad.\(p.name)")
            }
            for b in state.buffers {
                assertClose(state.floats(named: b.name)!, try fx.f(c + ".after." + b.name), rel: Tol.op, "\(c).after.\(b.name)")
            }
            for n in state.counterNames { XCTAssertEqual(state.counter(named: n), try fx.i64(c + ".after." + n)[0]) }
        }
    }

    func testResnetBlockLearnedAndIdentityShortcut() throws {
        let fx = try Fixtures.load("resblock")
        for c in ["learned", "identity", "learned_eval"] {
            let arena = Arena(), ctx = Context(arena: arena)
            let x = try fx.tensor(c + ".x", arena), seg = try fx.tensor(c + ".seg", arena)
            let fout = try fx.shape(c + ".y")[1]
            let hidden = try fx.shape(c + ".before.norm_0.mlp_shared.0.weight")[0]
            let state = ModelState()
            let block = SPADEResnetBlock(state, "", fin: x.c, fout: fout, semanticNC: seg.c, hidden: hidden)
            state.finalize()
            try fx.load(into: state, prefix: c + ".before.")
            let mode: Mode = c.hasSuffix("eval") ? .eval : .train
            let y = block.forward(x, seg: Resample.nearest(seg, h: x.h, w: x.w, ctx), mode: mode, ctx)
            assertClose(y, try fx.f(c + ".y"), rel: Tol.op, "\(c).y")
            let dx = arena.zeroTensor(like: x)
            block.backward(try fx.tensor(c + ".dy", arena), dx: dx, parameterGradients: true, ctx)
            assertClose(dx, try fx.f(c + ".dx"), rel: Tol.op, "\(c).dx")
            // conv_0.bias feeds norm_1's training-mode BN: exactly zero in exact arithmetic.
            let zero: Set<String> = mode == .train ? ["conv_0.bias"] : []
            var gmax = 0.0
            for p in state.params { gmax = max(gmax, maxAbs(try fx.f(c + ".grad." + p.name))) }
            for p in state.params {
                let g = state.gradient(named: p.name)!
                if zero.contains(p.name) {
                    XCTAssertLessThanOrEqual(maxAbs(g), Tol.zeroGrad * gmax, "\(c).\(p.name)")
                } else {
                    assertClose(g, try fx.f(c + ".grad." + p.name), rel: Tol.op, "\(c).grad.\(p.name)")
                }
            }
            for b in state.buffers {
                assertClose(state.floats(named: b.name)!, try fx.f(c + ".after." + b.name), rel: Tol.op, "\(c).after.\(b.name)")
            }
            for n in state.counterNames { XCTAssertEqual(state.counter(named: n), try fx.i64(c + ".after." + n)[0]) }
        }
    }

    func testHingeAndFeatureMatchingLosses() throws {
        let fx = try Fixtures.load("losses")
        let arena = Arena(), ctx = Context(arena: arena)
        // Build the 2B outputs [fake; real] the trainer's single D forward produces.
        var outputs: [[Tensor]] = []
        for s in 0..<2 {
            var row: [Tensor] = []
            for l in 0..<5 {
                let f = try fx.f("fake.s\(s).l\(l)"), r = try fx.f("real.s\(s).l\(l)"), sh = try fx.shape("fake.s\(s).l\(l)")
                let t = arena.tensor(2 * sh[0], sh[1], sh[2], sh[3])
                t.copy(from: f + r)
                row.append(t)
            }
            outputs.append(row)
        }
        let (losses, grads) = GANLoss.compute(outputs: outputs, fakeCount: 2, mode: .hinge, lambdaFeat: 10, featureMatching: true, ctx)
        assertClose([Float(losses.dFake)], try fx.f("D_Fake"), rel: Tol.op, "D_Fake")
        assertClose([Float(losses.dReal)], try fx.f("D_real"), rel: Tol.op, "D_real")
        assertClose([Float(losses.gGAN)], try fx.f("G_GAN"), rel: Tol.op, "G_GAN")
        assertClose([Float(losses.gGANFeat)], try fx.f("G_GANFeat"), rel: Tol.op, "G_GANFeat")
        for s in 0..<2 {
            let dd = grads.lossD[s][4]!
            assertClose(dd.prefix(samples: 2), try fx.f("dD_Fake.fake.s\(s).l4"), rel: Tol.op, "dD_Fake s\(s)")
            assertClose(dd.samples(2, 2), try fx.f("dD_real.real.s\(s).l4"), rel: Tol.op, "dD_real s\(s)")
            assertClose(grads.lossG[s][4]!, try fx.f("dG_GAN.fake.s\(s).l4"), rel: Tol.op, "dG_GAN s\(s)")
            for l in 0..<4 {
                XCTAssertNil(grads.lossD[s][l])
                assertClose(grads.lossG[s][l]!, try fx.f("dG_GANFeat.fake.s\(s).l\(l)"), rel: Tol.op, "dG_GANFeat s\(s) l\(l)")
            }
        }
    }

    func testAdamTwoStepsFreshAndWarm() throws {
        let fx = try Fixtures.load("adam")
        for c in ["lr1e-4", "lr4e-4", "lr4e-4_warm"] {
            let lr = Double(try fx.f(c + ".lr")[0])
            let step0 = try fx.i64(c + ".step0")[0]
            for t in ["w", "b"] {
                let key = "\(c).\(t)."
                var p = try fx.f(key + "p0")
                let adam = Adam(count: p.count)
                adam.step = step0
                try fx.f(key + "exp_avg0").withUnsafeBufferPointer { adam.expAvg.update(from: $0.baseAddress!, count: p.count) }
                try fx.f(key + "exp_avg_sq0").withUnsafeBufferPointer { adam.expAvgSq.update(from: $0.baseAddress!, count: p.count) }
                for k in 1...2 {
                    adam.update(parameters: &p, summedGradients: try fx.f(key + "g\(k)"), lr: lr)
                    let m = Array(UnsafeBufferPointer(start: adam.expAvg, count: p.count))
                    let v = Array(UnsafeBufferPointer(start: adam.expAvgSq, count: p.count))
                    XCTAssertEqual(m, try fx.f(key + "exp_avg\(k)"), "\(key) exp_avg\(k) (bit-exact with beta1 = 0)")
                    assertClose(v, try fx.f(key + "exp_avg_sq\(k)"), rel: Tol.op, "\(key)exp_avg_sq\(k)")
                    // parameters: abs <= 0.1 lr (README); elements with |g| ~ 1e-9 are sign steps
                    XCTAssertLessThanOrEqual(maxAbsDifference(p, try fx.f(key + "p\(k)")), 0.1 * lr, "\(key)p\(k)")
                }
                XCTAssertEqual(adam.step, step0 + 2)
            }
        }
    }

    /// With node-shared gradients Adam gets the replicas' gradients themselves and adds them in
    /// rank order: bit for bit the step on that sum (checked for 1..4 parts, chunk boundaries of
    /// the C kernel included: 5003 elements), also when split into ranges (the sharded optimizer).
    func testAdamOnGradientPartsEqualsAdamOnTheirSum() {
        var rng = SplitMix64(seed: 11)
        let count = 5003
        let start: [Float] = (0..<count).map { _ in Float(rng.uniform(-0.5, 0.5)) }
        for n in 1...4 {
            let parts: [[Float]] = (0..<n).map { _ in (0..<count).map { _ in Float(rng.uniform(-1, 1)) } }
            let sum: [Float] = (0..<count).map { i in parts.dropFirst().reduce(parts[0][i]) { $0 + $1[i] } }
            let onParts = Adam(count: count), onSum = Adam(count: count), sharded = Adam(count: count)
            var p1 = start, p2 = start, p3 = start
            for _ in 0..<2 {
                withPointers(parts) { onParts.update(parameters: &p1, gradientParts: $0, replicas: n, lr: 1e-3) }
                onSum.update(parameters: &p2, summedGradients: sum, replicas: n, lr: 1e-3)
                withPointers(parts) {
                    sharded.update(parameters: &p3, gradientParts: $0, replicas: n, lr: 1e-3, ranges: [0..<2049, 2049..<count])
                }
            }
            XCTAssertEqual(zip(p1, p2).filter { $0.bitPattern != $1.bitPattern }.count, 0, "\(n) parts vs their sum")
            XCTAssertEqual(zip(p3, p2).filter { $0.bitPattern != $1.bitPattern }.count, 0, "\(n) parts in two ranges")
            XCTAssertEqual(zip(UnsafeBufferPointer(start: onParts.expAvg, count: count), UnsafeBufferPointer(start: onSum.expAvg, count: count))
                .filter { $0.bitPattern != $1.bitPattern }.count, 0, "\(n) parts: exp_avg")
        }
    }

    private func withPointers(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) -> Void) {
        func recurse(_ i: Int, _ acc: [UnsafePointer<Float>]) {
            if i == arrays.count { return body(acc) }
            arrays[i].withUnsafeBufferPointer { recurse(i + 1, acc + [$0.baseAddress!]) }
        }
        recurse(0, [])
    }

    /// Data parallelism hands Adam the replicas' summed gradients; stepping with `replicas: N` must
    /// be bit for bit the step on the average s / N (PyTorch divides before the step): for
    /// N = 1..5 (powers of two take the reciprocal path), with subnormal and tiny values.
    func testAdamOnSummedGradientsStepsWithTheirTrueAverage() {
        var rng = SplitMix64(seed: 7)
        let count = 1003
        let sums: [Float] = (0..<count).map { i in
            i % 97 == 0 ? Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x7fffff | 1)   // subnormal
                : Float(rng.uniform(-1e3, 1e3)) * (i % 5 == 0 ? 1e-30 : 1)
        }
        let start: [Float] = (0..<count).map { _ in Float(rng.uniform(-0.5, 0.5)) }
        for n in 1...5 {
            for beta1 in [0.0, 0.5] {
                let summed = Adam(count: count, beta1: beta1), averaged = Adam(count: count, beta1: beta1)
                var p1 = start, p2 = start
                for _ in 0..<2 {
                    summed.update(parameters: &p1, summedGradients: sums, replicas: n, lr: 1e-3)
                    averaged.update(parameters: &p2, summedGradients: sums.map { $0 / Float(n) }, lr: 1e-3)
                }
                func differing(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Int {
                    zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
                }
                XCTAssertEqual(p1.withUnsafeBufferPointer { x in p2.withUnsafeBufferPointer { differing(x, $0) } }, 0,
                               "N = \(n), beta1 = \(beta1): parameters differ")
                for (a, b, what) in [(summed.expAvg, averaged.expAvg, "exp_avg"), (summed.expAvgSq, averaged.expAvgSq, "exp_avg_sq")] {
                    XCTAssertEqual(differing(UnsafeBufferPointer(start: a, count: count), UnsafeBufferPointer(start: b, count: count)), 0,
                                   "N = \(n), beta1 = \(beta1): \(what) differs")
                }
            }
        }
    }
}
