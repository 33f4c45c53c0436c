import XCTest
import SpadeCore
import SpadeNN

/// `gan_mode` against NVlabs' GANLoss (models/networks/loss.py), re-derived here in float64:
/// per scale `loss(pred_i[-1], ...)` is the mean over the elements of that scale's last
/// output; the list's loss is the sum over scales divided by len(input). Gradients are the
/// derivatives of those means with respect to each element.
final class GANModeTests: XCTestCase {
    /// NVlabs' loss of one element, written from loss.py's definitions (not from GANMode):
    /// original = binary_cross_entropy_with_logits, ls = mse_loss against the 1/0 target,
    /// hinge = -min(x - 1, 0) / -min(-x - 1, 0) for D and -x for G, w = -x real, x fake.
    /// Returns (loss, d loss / d x).
    static func reference(_ mode: GANMode, _ x: Double, real: Bool, forDiscriminator: Bool) -> (Double, Double) {
        let t = real ? 1.0 : 0.0
        switch mode {
        case .original:
            let p = 1 / (1 + exp(-x))
            return (-(t * log(p) + (1 - t) * log(1 - p)), p - t)
        case .ls:
            return ((x - t) * (x - t), 2 * (x - t))
        case .hinge:
            if !forDiscriminator { return (-x, -1) }
            return real ? (-min(x - 1, 0), x - 1 < 0 ? -1 : 0) : (-min(-x - 1, 0), -x - 1 < 0 ? 1 : 0)
        case .w:
            return real ? (-x, -1) : (x, 1)
        }
    }

    /// Two scales of different sizes, each [feature, feature, prediction] over 2B = 4 samples
    /// (fake first), as the multiscale discriminator returns them. Predictions are mostly in
    /// [-3, 3], with a few at +-12 where a naive cross-entropy gradient (sigmoid(x) - 1 in
    /// float32) would lose its precision.
    func outputs(_ arena: Arena) -> [[Tensor]] {
        var rng = SplitMix64(seed: 20)
        var scales: [[Tensor]] = []
        for (h, w) in [(6, 5), (3, 3)] {
            var layers: [Tensor] = []
            for c in [3, 2, 1] {
                let t = arena.tensor(4, c, h, w)
                for i in 0..<t.count {
                    let saturated = c == 1 && i % 7 == 3
                    t.data[i] = saturated ? (i % 2 == 0 ? 12 : -12) : Float(rng.uniform(-3, 3))
                }
                layers.append(t)
            }
            scales.append(layers)
        }
        return scales
    }

    /// Losses within 1e-5 of mean |per-element loss| and every gradient element within 1e-5
    /// relative of float64. Why 1e-5: each element's loss and gradient are a few float32
    /// operations on an exact float32 input (relative error a few times 2^-24 = 6e-8), and the
    /// sums are accumulated in double, so the implementation's error is ~3e-7 of the terms'
    /// magnitude; cancellation in -mean(x) (hinge G, w) is why the loss bound scales with
    /// mean |loss| rather than |loss|. Any wrong target, sign, scale average or an unstable
    /// sigmoid(x) - 1 (relative error ~1e-2 at x = 12) is far outside it.
    func testEachGANModeMatchesNVlabsLossesAndGradients() {
        let arena = Arena(), ctx = Context(arena: arena)
        let scales = outputs(arena)
        let b = 2
        var featureLosses: [Double] = []
        for mode in GANMode.allCases {
            let (losses, grads) = GANLoss.compute(outputs: scales, fakeCount: b, mode: mode, lambdaFeat: 10,
                                                  featureMatching: true, ctx)
            var ref = (dFake: 0.0, dReal: 0.0, g: 0.0), magnitude = (dFake: 0.0, dReal: 0.0, g: 0.0)
            let numD = Double(scales.count)
            for (s, layers) in scales.enumerated() {
                let pred = layers.last!
                let m = pred.count / 2                    // elements per half (fake or real)
                let dD = grads.lossD[s].last!!, dG = grads.lossG[s].last!!
                XCTAssertEqual(dD.count, 2 * m)
                XCTAssertEqual(dG.count, m)
                for i in 0..<m {
                    let f = Double(pred.data[i]), r = Double(pred.data[m + i])
                    let dFake = Self.reference(mode, f, real: false, forDiscriminator: true)
                    let dReal = Self.reference(mode, r, real: true, forDiscriminator: true)
                    let g = Self.reference(mode, f, real: true, forDiscriminator: false)
                    ref.dFake += dFake.0 / Double(m) / numD
                    ref.dReal += dReal.0 / Double(m) / numD
                    ref.g += g.0 / Double(m) / numD
                    magnitude.dFake += abs(dFake.0) / Double(m) / numD
                    magnitude.dReal += abs(dReal.0) / Double(m) / numD
                    magnitude.g += abs(g.0) / Double(m) / numD
                    for (got, derivative, what) in [(dD.data[i], dFake.1, "dD_Fake"), (dD.data[m + i], dReal.1, "dD_real"),
                                                    (dG.data[i], g.1, "dG_GAN")] {
                        let expected = derivative / Double(m) / numD
                        XCTAssertLessThanOrEqual(abs(Double(got) - expected), 1e-5 * abs(expected),
                                                 "\(mode) \(what) scale \(s) element \(i): \(got) vs \(expected)")
                    }
                }
                // Only each scale's prediction enters loss_D; its features get no D gradient.
                XCTAssert(grads.lossD[s].dropLast().allSatisfy { $0 == nil }, "\(mode) scale \(s)")
            }
            XCTAssertLessThanOrEqual(abs(losses.dFake - ref.dFake), 1e-5 * magnitude.dFake, "\(mode) D_Fake \(losses.dFake) vs \(ref.dFake)")
            XCTAssertLessThanOrEqual(abs(losses.dReal - ref.dReal), 1e-5 * magnitude.dReal, "\(mode) D_real \(losses.dReal) vs \(ref.dReal)")
            XCTAssertLessThanOrEqual(abs(losses.gGAN - ref.g), 1e-5 * magnitude.g, "\(mode) G_GAN \(losses.gGAN) vs \(ref.g)")
            featureLosses.append(losses.gGANFeat)
        }
        // Feature matching does not depend on gan_mode (NVlabs: GANFeat uses L1 either way).
        XCTAssertEqual(Set(featureLosses).count, 1, "\(featureLosses)")
        XCTAssertGreaterThan(featureLosses[0], 0)
    }
}
