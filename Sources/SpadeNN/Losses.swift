import Foundation
import SpadeCore

/// NVlabs' `gan_mode` (models/networks/loss.py, GANLoss.loss): the loss of ONE discriminator
/// output element x against the real or the fake target, as the discriminator's or the
/// generator's loss. GANLoss takes the mean over a scale's elements and then the mean over
/// the num_D scales (`GANLoss.compute`).
public enum GANMode: String, Sendable, CaseIterable {
    /// D: relu(1 - x) real, relu(1 + x) fake (NVlabs: -min(x - 1, 0), -min(-x - 1, 0)); G: -x.
    case hinge
    /// Least squares (F.mse_loss): (x - 1)^2 real and for G, x^2 fake.
    case ls
    /// Cross entropy (F.binary_cross_entropy_with_logits): softplus(-x) real and for G, softplus(x) fake.
    case original
    /// Wasserstein: -x real and for G, x fake.
    case w

    /// Which loss an element enters: D's on a real or a fake sample, or G's (target real).
    public enum Term: Sendable { case dReal, dFake, generator }

    /// The loss of element `x` and its derivative d loss / d x.
    @inline(__always)
    public func loss(_ x: Float, _ term: Term) -> (value: Float, derivative: Float) {
        switch (self, term) {
        case (.hinge, .dReal):
            let h = 1 - x
            return h > 0 ? (h, -1) : (0, 0)          // relu'(0) = 0 (NVlabs' min: 1/2 at an exact tie)
        case (.hinge, .dFake):
            let h = 1 + x
            return h > 0 ? (h, 1) : (0, 0)
        case (.hinge, .generator), (.w, .dReal), (.w, .generator):
            return (-x, -1)
        case (.w, .dFake):
            return (x, 1)
        case (.ls, .dReal), (.ls, .generator):
            let d = x - 1
            return (d * d, 2 * d)
        case (.ls, .dFake):
            return (x * x, 2 * x)
        case (.original, .dReal), (.original, .generator):
            // -log sigmoid(x); the derivative sigmoid(x) - 1 is written -sigmoid(-x), which keeps
            // its precision where sigmoid(x) rounds to 1.
            return (softplus(-x), -sigmoid(-x))
        case (.original, .dFake):
            return (softplus(x), sigmoid(x))
        }
    }
}

/// log(1 + e^z) without overflow for large z or loss of precision for very negative z.
@inline(__always) func softplus(_ z: Float) -> Float { max(z, 0) + log1p(exp(-abs(z))) }

/// 1 / (1 + e^-z): e^-z overflows to inf for very negative z, giving the correct 0.
@inline(__always) func sigmoid(_ z: Float) -> Float { 1 / (1 + exp(-z)) }

/// Values of the SPADE losses for one discriminator pass (sums over float32
/// outputs accumulated in double; logged as float32). l_* are `GANMode.loss`.
public struct GANLosses: Sendable, Equatable {
    public var dFake: Double = 0      // D_Fake   = mean_s mean(l_dFake(P_s(fake)))
    public var dReal: Double = 0      // D_real   = mean_s mean(l_dReal(P_s(real)))
    public var gGAN: Double = 0       // G_GAN    = mean_s mean(l_generator(P_s(fake)))
    public var gGANFeat: Double = 0   // G_GANFeat = sum_s sum_j lambda/num_D * mean|F_sj(fake) - F_sj(real)|
    public var lossD: Double { dFake + dReal }
    public var lossG: Double { gGAN + gGANFeat }
    public init() {}
}

/// GAN (`GANMode`) + feature-matching losses and their gradients w.r.t. the
/// discriminator outputs, from ONE forward over [fake; real] (fake first).
public enum GANLoss {
    public struct Gradients {
        /// dloss_D / d outputs over all 2B samples (only the last layer of each scale is non-nil).
        public var lossD: [[Tensor?]]
        /// dloss_G / d outputs over the B fake samples (last layer + features).
        public var lossG: [[Tensor?]]
    }

    /// `outputs[s][l]` hold 2B samples: the first `fakeCount` are fake.
    public static func compute(outputs: [[Tensor]], fakeCount b: Int, mode: GANMode, lambdaFeat: Float,
                               featureMatching: Bool, _ ctx: Context) -> (GANLosses, Gradients) {
        var losses = GANLosses()
        let numD = Float(outputs.count)
        var gD: [[Tensor?]] = [], gG: [[Tensor?]] = []
        var dFake = 0.0, dReal = 0.0, gGAN = 0.0, feat = 0.0
        for scale in outputs {
            let last = scale.count - 1
            var rowD = [Tensor?](repeating: nil, count: scale.count)
            var rowG = [Tensor?](repeating: nil, count: scale.count)
            let p = scale[last]
            let fake = p.prefix(samples: b), real = p.samples(b, b)
            let m = fake.count
            let inv = 1 / (Float(m) * numD)
            var sf = 0.0, sr = 0.0, sg = 0.0
            let dd = ctx.arena.tensor(p.n, p.c, p.h, p.w)
            let dg = ctx.arena.tensor(b, p.c, p.h, p.w)
            for i in 0..<m {
                let f = fake.data[i], r = real.data[i]
                let lf = mode.loss(f, .dFake), lr = mode.loss(r, .dReal), lg = mode.loss(f, .generator)
                sf += Double(lf.value); sr += Double(lr.value); sg += Double(lg.value)
                dd.data[i] = lf.derivative * inv
                dd.data[m + i] = lr.derivative * inv
                dg.data[i] = lg.derivative * inv
            }
            dFake += sf / Double(m); dReal += sr / Double(m); gGAN += sg / Double(m)
            rowD[last] = dd; rowG[last] = dg
            if featureMatching {
                for l in 0..<last {
                    let t = scale[l]
                    let fk = t.prefix(samples: b), rl = t.samples(b, b)
                    let n = fk.count
                    let w = lambdaFeat / numD
                    let scaleGrad = w / Float(n)
                    var s = 0.0
                    let dfeat = ctx.arena.tensor(b, t.c, t.h, t.w)
                    for i in 0..<n {
                        let diff = fk.data[i] - rl.data[i]
                        s += Double(abs(diff))
                        dfeat.data[i] = diff > 0 ? scaleGrad : (diff < 0 ? -scaleGrad : 0)   // |.|'(0) = 0
                    }
                    feat += Double(w) * s / Double(n)
                    rowG[l] = dfeat
                }
            }
            gD.append(rowD); gG.append(rowG)
        }
        losses.dFake = dFake / Double(numD)
        losses.dReal = dReal / Double(numD)
        losses.gGAN = gGAN / Double(numD)
        losses.gGANFeat = feat
        return (losses, Gradients(lossD: gD, lossG: gG))
    }
}
