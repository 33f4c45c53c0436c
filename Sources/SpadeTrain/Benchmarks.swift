import Foundation
import SpadeCore
import SpadeNN

/// Timing of one convolution layer against the raw sgemm time of its GEMMs.
public struct ConvTiming: Encodable, Sendable {
    public var name: String
    public var kernel: Int
    public var stride: Int
    public var cin: Int
    public var cout: Int
    public var batch: Int
    public var height: Int
    public var width: Int
    /// Forward + backward (weight and input gradients), median seconds.
    public var conv_seconds: Double
    /// "im2col", "winograd" or "pointwise".
    public var algorithm: String
    /// The convolution's GEMMs in im2col form (forward, dW, dX) through cblas_sgemm alone,
    /// median seconds, same run: the baseline, whatever algorithm the layer uses.
    public var gemm_seconds: Double
    /// The GEMMs the chosen algorithm issues, raw (equal in kind to gemm_seconds for im2col).
    public var algorithm_gemm_seconds: Double
    /// Flops of the im2col GEMMs (GFLOP/s figures are "effective" for Winograd layers).
    public var gflop: Double
    public var conv_gflops: Double { gflop / conv_seconds }
    public var gemm_gflops: Double { gflop / gemm_seconds }
    public var ratio: Double { conv_seconds / gemm_seconds }

    enum CodingKeys: String, CodingKey {
        case name, kernel, stride, cin, cout, batch, height, width, algorithm, conv_seconds, gemm_seconds
        case algorithm_gemm_seconds, gflop, conv_gflops, gemm_gflops, ratio
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name); try c.encode(kernel, forKey: .kernel); try c.encode(stride, forKey: .stride)
        try c.encode(cin, forKey: .cin); try c.encode(cout, forKey: .cout); try c.encode(batch, forKey: .batch)
        try c.encode(height, forKey: .height); try c.encode(width, forKey: .width)
        try c.encode(algorithm, forKey: .algorithm)
        try c.encode(conv_seconds, forKey: .conv_seconds); try c.encode(gemm_seconds, forKey: .gemm_seconds)
        try c.encode(algorithm_gemm_seconds, forKey: .algorithm_gemm_seconds)
        try c.encode(gflop, forKey: .gflop); try c.encode(conv_gflops, forKey: .conv_gflops)
        try c.encode(gemm_gflops, forKey: .gemm_gflops); try c.encode(ratio, forKey: .ratio)
    }
}

public struct StepTiming: Codable, Sendable {
    public var seconds_per_iteration: Double
    public var images_per_second: Double
    public var iterations: Int
    public var batch: Int
    public var blas_threads: Int
    public var blas_core: String
    /// Peak activation arena + im2col workspace of one process, bytes.
    public var activation_bytes: Int
    /// Parameters, gradients and Adam moments of G and D, bytes.
    public var parameter_bytes: Int
}

/// `spade-dist bench conv|step`: micro and step benchmarks, machine-readable.
public enum Benchmarks {
    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }

    static func time(repeats: Int, _ body: () -> Void) -> Double {
        body()  // warm-up: workspace growth, caches
        var samples: [Double] = []
        for _ in 0..<max(repeats, 1) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        return median(samples)
    }

    /// A random one-hot segmap (B, semanticNC, H, W) and image, deterministic.
    static func randomBatch(_ config: ModelConfig, batch: Int, seed: UInt64) -> (semantics: [Float], image: [Float]) {
        var rng = SplitMix64(seed: seed)
        let h = config.imageHeight, w = config.imageWidth, nc = config.semanticNC
        var sem = [Float](repeating: 0, count: batch * nc * h * w)
        // blocky labels so that every resolution sees several classes
        let block = max(4, w / 8)
        for b in 0..<batch {
            var classes: [Int] = []
            for _ in 0..<(((h + block - 1) / block) * ((w + block - 1) / block)) { classes.append(Int(rng.next() % UInt64(nc))) }
            for y in 0..<h { for x in 0..<w {
                let c = classes[(y / block) * ((w + block - 1) / block) + x / block]
                sem[((b * nc + c) * h + y) * w + x] = 1
            } }
        }
        let img = (0..<(batch * 3 * h * w)).map { _ in Float(rng.unit() * 2 - 1) }
        return (sem, img)
    }

    /// Times every convolution of G (at batch B) and D (at 2B, as the iteration runs it).
    public static func convolutions(config: ModelConfig, batch: Int, repeats: Int = 5) -> [ConvTiming] {
        let it = TrainingIteration(config: config)
        it.generator.state.initializeNVlabs(seed: 1)
        it.discriminator.state.initializeNVlabs(seed: 2)
        let (s, x) = randomBatch(config, batch: batch, seed: 3)
        _ = it.computeGradients(semantics: s, image: x, batch: batch)
        var results: [ConvTiming] = []
        let ws = Workspace()
        var rng = SplitMix64(seed: 4)
        for conv in it.generator.convLayers + it.discriminator.convLayers {
            guard let shapeIn = conv.input else { continue }
            let g = conv.geometry(h: shapeIn.h, w: shapeIn.w)
            let n = shapeIn.n
            let xBuf = (0..<(n * g.cin * g.h * g.w)).map { _ in Float(rng.unit() - 0.5) }
            let wBuf = (0..<(conv.cout * g.colRows)).map { _ in Float(rng.unit() - 0.5) * 0.1 }
            let bBuf = [Float](repeating: 0.01, count: conv.cout)
            var xs = xBuf, ys = [Float](repeating: 0, count: n * conv.cout * g.outH * g.outW)
            var dxs = xBuf, dws = wBuf, dbs = bBuf
            // as Conv2d runs it: Winograd keeps its transformed input from forward to backward
            let kept = winogradSavedInputCount(cout: conv.cout, geometry: g, samples: n, workspace: ws, algorithm: conv.algorithm)
            let keptInput = kept.map { UnsafeMutablePointer<Float>.allocate(capacity: $0) }
            defer { keptInput?.deallocate() }
            let convTime = xs.withUnsafeMutableBufferPointer { xp in
                ys.withUnsafeMutableBufferPointer { yp in
                    dxs.withUnsafeMutableBufferPointer { dxp in
                        dws.withUnsafeMutableBufferPointer { dwp in
                            dbs.withUnsafeMutableBufferPointer { dbp in
                                let xt = Tensor(xp.baseAddress!, n, g.cin, g.h, g.w)
                                let yt = Tensor(yp.baseAddress!, n, conv.cout, g.outH, g.outW)
                                let dxt = Tensor(dxp.baseAddress!, n, g.cin, g.h, g.w)
                                return time(repeats: repeats) {
                                    convForward(x: xt, weight: wBuf, bias: bBuf, cout: conv.cout, geometry: g, y: yt,
                                                workspace: ws, algorithm: conv.algorithm, winogradInput: keptInput)
                                    convBackward(x: xt, weight: wBuf, cout: conv.cout, geometry: g, dy: yt,
                                                 dweight: dwp.baseAddress!, dbias: dbp.baseAddress!, dx: dxt, workspace: ws,
                                                 algorithm: conv.algorithm, winogradInput: keptInput)
                                }
                            }
                        }
                    }
                }
            }
            let shapes = convGEMMShapes(cout: conv.cout, geometry: g, samples: n, workspace: ws, algorithm: .im2col)
            let issued = convGEMMShapes(cout: conv.cout, geometry: g, samples: n, workspace: ws, algorithm: conv.algorithm)
            let algorithm = convPathName(g, conv.algorithm ?? ws.convAlgorithm)
            let gemmTime = rawGEMMSeconds(shapes, repeats: repeats)
            let issuedTime = algorithm == "winograd" ? rawGEMMSeconds(issued, repeats: repeats) : gemmTime
            let gflop = shapes.reduce(0) { $0 + $1.flops } * 1e-9
            results.append(ConvTiming(name: (it.generator.convLayers.contains { $0 === conv } ? "netG." : "netD.") + conv.name,
                                      kernel: conv.kernel, stride: conv.stride, cin: conv.cin, cout: conv.cout,
                                      batch: n, height: g.h, width: g.w, conv_seconds: convTime, algorithm: algorithm,
                                      gemm_seconds: gemmTime, algorithm_gemm_seconds: issuedTime, gflop: gflop))
        }
        return results
    }

    /// Median time of `shapes` through cblas_sgemm alone (constant operands).
    static func rawGEMMSeconds(_ shapes: [GEMMShape], repeats: Int) -> Double {
        let maxA = shapes.map { $0.m * $0.k }.max()!, maxB = shapes.map { $0.k * $0.n }.max()!
        let maxC = shapes.map { $0.m * $0.n }.max()!
        let a = [Float](repeating: 0.5, count: maxA), b = [Float](repeating: 0.25, count: maxB)
        var c = [Float](repeating: 0, count: maxC)
        return c.withUnsafeMutableBufferPointer { cp in
            time(repeats: repeats) {
                for sh in shapes {
                    sgemm(transA: sh.transA, transB: sh.transB, m: sh.m, n: sh.n, k: sh.k, a: a,
                          lda: sh.transA ? sh.m : sh.k, b: b, ldb: sh.transB ? sh.k : sh.n,
                          beta: 0, c: cp.baseAddress!, ldc: sh.n)
                }
            }
        }
    }

    /// Times whole training iterations (forward, backward, Adam) in one process.
    public static func step(config: ModelConfig, batch: Int, iterations: Int = 5) -> StepTiming {
        let it = TrainingIteration(config: config)
        it.generator.state.initializeNVlabs(seed: 1)
        it.discriminator.state.initializeNVlabs(seed: 2)
        let (s, x) = randomBatch(config, batch: batch, seed: 3)
        let sec = time(repeats: iterations) {
            _ = it.computeGradients(semantics: s, image: x, batch: batch)
            it.applyUpdates(lrG: 1e-4, lrD: 4e-4)
        }
        let params = it.generator.state.parameterCount + it.discriminator.state.parameterCount
        return StepTiming(seconds_per_iteration: sec, images_per_second: Double(batch) / sec, iterations: iterations,
                          batch: batch, blas_threads: BLASThreads.current, blas_core: BLASThreads.coreName,
                          activation_bytes: it.context.arena.highWater + it.context.workspace.bytes,
                          parameter_bytes: params * 4 * 4)
    }

    /// Human-readable table of conv timings.
    public static func table(_ rows: [ConvTiming]) -> String {
        func f(_ x: Double, _ d: Int) -> String { String(format: "%.\(d)f", x) }
        var out = "layer                                   k s  cin->cout   input      B  algorithm  conv ms  gemm ms  ratio  GFLOP/s\n"
        for r in rows {
            let name = r.name.padding(toLength: 38, withPad: " ", startingAt: 0)
            let ch = "\(r.cin)->\(r.cout)".padding(toLength: 10, withPad: " ", startingAt: 0)
            let inp = "\(r.height)x\(r.width)".padding(toLength: 9, withPad: " ", startingAt: 0)
            out += "\(name)  \(r.kernel) \(r.stride)  \(ch)  \(inp) \(String(format: "%3d", r.batch))  "
            out += r.algorithm.padding(toLength: 9, withPad: " ", startingAt: 0)
            out += "\(f(r.conv_seconds * 1e3, 3).leftPad(8)) \(f(r.gemm_seconds * 1e3, 3).leftPad(8))  "
            out += "\(f(r.ratio, 2).leftPad(5))  \(f(r.conv_gflops, 1).leftPad(7))\n"
        }
        let conv = rows.reduce(0) { $0 + $1.conv_seconds }, gemm = rows.reduce(0) { $0 + $1.gemm_seconds }
        let flop = rows.reduce(0) { $0 + $1.gflop }
        let k3 = rows.filter { $0.kernel == 3 }
        let k3c = k3.reduce(0) { $0 + $1.conv_seconds }, k3g = k3.reduce(0) { $0 + $1.gemm_seconds }
        out += "total: conv \(f(conv * 1e3, 2)) ms, raw gemm \(f(gemm * 1e3, 2)) ms, ratio \(f(conv / gemm, 2)), "
        out += "\(f(flop / conv, 1)) GFLOP/s; 3x3 convs: ratio \(f(k3c / max(k3g, 1e-12), 2))\n"
        return out
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
