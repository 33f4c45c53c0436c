import XCTest
import SpadeCore
import SpadeNN
import SpadeTestSupport

/// Finite-difference checks of whole-network gradients on configurations the
/// fixtures do not cover (other label counts, aspect ratios, upsampling modes,
/// discriminator depths), Caffe GradientChecker style.
///
/// Each check is a directional derivative: for a parameter tensor T with analytic
/// gradient g_T, the loss along d = g_T / |g_T| must change at rate |g_T|. A wrong
/// scale, sign, transposition or a missing term in g_T changes that rate by O(1).
/// Central differences with |h| = 1e-3; buffers (u, v, running statistics) are
/// restored before every evaluation so the loss is a pure function of the parameters.
/// Two effects limit agreement, both measured here: hinge/leaky-ReLU kinks crossed
/// inside the step (errors up to 3-5% for hidden D layers at h = 3e-3, shrinking with h)
/// and float32 rounding of the network's outputs (the loss itself is summed in double),
/// dominant below h = 3e-4. Observed worst case: 3%; the bound is 5e-2.
final class GradientCheckTests: XCTestCase {
    struct Snapshot {
        let buffers: [Float], counters: [Int64]
        init(_ s: ModelState) { buffers = Array(s.floatBuffers); counters = s.counters }
        func restore(_ s: ModelState) {
            buffers.withUnsafeBufferPointer { s.bufferValues.update(from: $0.baseAddress!, count: buffers.count) }
            s.counters = counters
        }
    }

    func check(_ config: ModelConfig, batch: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let it = TrainingIteration(config: config)
        // 5x NVlabs' init scale, so that signals are well above float32 noise.
        it.generator.state.initializeNVlabs(seed: seed)
        it.discriminator.state.initializeNVlabs(seed: seed + 1)
        for s in [it.generator.state, it.discriminator.state] {
            for i in 0..<s.parameterCount { s.values[i] *= 5 }
        }
        // Spectral norm's gradient holds u, v constant (torch semantics), while a finite
        // difference also sees the power iteration move them. At the converged singular
        // vectors that motion has no first-order effect on sigma, so converge them first.
        for s in [it.generator.state, it.discriminator.state] {
            for p in s.params where p.name.hasSuffix("weight_orig") {
                let base = String(p.name.dropLast("orig".count))
                let u = s.floatTensor(named: base + "u")!.pointer, v = s.floatTensor(named: base + "v")!.pointer
                var scratch = [Float](repeating: 0, count: p.shape[0])
                for _ in 0..<200 {
                    _ = SpectralNorm.forward(weightOrig: s.values + p.offset,
                                             rows: p.shape[0], cols: p.count / p.shape[0], u: u, v: v,
                                             powerIteration: true, scratch: &scratch)
                }
            }
        }
        var rng = SplitMix64(seed: seed + 2)
        let h = config.imageHeight, w = config.imageWidth, nc = config.semanticNC
        var sem = [Float](repeating: 0, count: batch * nc * h * w)
        for b in 0..<batch { for y in 0..<h { for x in 0..<w {
            let c = (y / 8 + x / 8 + b + Int(rng.next() % 2)) % nc
            sem[((b * nc + c) * h + y) * w + x] = 1
        } } }
        let img = (0..<(batch * 3 * h * w)).map { _ in Float(rng.unit() * 2 - 1) }
        let snapG = Snapshot(it.generator.state), snapD = Snapshot(it.discriminator.state)

        func losses() -> GANLosses {
            snapG.restore(it.generator.state); snapD.restore(it.discriminator.state)
            return it.computeGradients(semantics: sem, image: img, batch: batch)
        }
        _ = losses()
        let gradG = Array(it.generator.state.gradientBuffer), gradD = Array(it.discriminator.state.gradientBuffer)

        for (state, grads, lossOf) in [(it.generator.state, gradG, { (l: GANLosses) in l.lossG }),
                                       (it.discriminator.state, gradD, { (l: GANLosses) in l.lossD })] {
            var tensors = state.params.filter { !$0.name.hasSuffix("bias") || $0.name.contains("mlp") }
            tensors.shuffle(using: &rng)
            for p in tensors.prefix(8) {
                let g = Array(grads[p.offset..<(p.offset + p.count)])
                let gNorm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                guard gNorm > 0 else { continue }
                let original = Array(state.valueBuffer[p.offset..<(p.offset + p.count)])
                let step = 1e-3
                func lossAt(_ t: Double) -> Double {
                    for i in 0..<p.count { state.values[p.offset + i] = original[i] + Float(t * Double(g[i]) / gNorm) }
                    return lossOf(losses())
                }
                let numeric = (lossAt(step) - lossAt(-step)) / (2 * step)
                for i in 0..<p.count { state.values[p.offset + i] = original[i] }
                let err = abs(numeric - gNorm) / gNorm
                XCTAssertLessThan(err, 5e-2, "\(p.name): |g| \(gNorm), finite difference \(numeric)", file: file, line: line)
            }
        }
    }

    func testMoreUpsamplingTallImagesSevenLabels() {
        // 'more': sw = 64 / 2^6 = 1, aspect 0.5 -> sh = 2: images 128 x 64, 3-layer D
        check(ModelConfig(semanticNC: 7, cropSize: 64, aspectRatio: 0.5, upsampling: .more, ngf: 2, ndf: 4,
                          spadeHidden: 8, nLayersD: 3, numD: 2), batch: 2, seed: 11)
    }

    func testMostUpsamplingWideImagesThreeScales() {
        // 'most': sw = 256 / 2^7 = 2, aspect 2 -> sh = 1: images 128 x 256, up_4 with nf/2 channels
        check(ModelConfig(semanticNC: 4, cropSize: 256, aspectRatio: 2, upsampling: .most, ngf: 2, ndf: 2,
                          spadeHidden: 4, nLayersD: 2, numD: 3), batch: 1, seed: 21)
    }
}
