import SpadeCore

/// Values of the SPADE losses for one discriminator pass (sums over float32
/// outputs accumulated in double; logged as float32).
public struct GANLosses: Sendable, Equatable {
    public var dFake: Double = 0      // D_Fake   = mean_s mean(relu(1 + P_s(fake)))
    public var dReal: Double = 0      // D_real   = mean_s mean(relu(1 - P_s(real)))
    public var gGAN: Double = 0       // G_GAN    = mean_s -mean(P_s(fake))
    public var gGANFeat: Double = 0   // G_GANFeat = sum_s sum_j lambda/num_D * mean|F_sj(fake) - F_sj(real)|
    public var lossD: Double { dFake + dReal }
    public var lossG: Double { gGAN + gGANFeat }
    public init() {}
}

/// Hinge + feature-matching losses and their gradients w.r.t. the
/// discriminator outputs, from ONE forward over [fake; real] (fake first).
public enum GANLoss {
    public struct Gradients {
        /// dloss_D / d outputs over all 2B samples (only the last layer of each scale is non-nil).
        public var lossD: [[Tensor?]]
        /// dloss_G / d outputs over the B fake samples (last layer + features).
        public var lossG: [[Tensor?]]
    }

    /// `outputs[s][l]` hold 2B samples: the first `fakeCount` are fake.
    public static func compute(outputs: [[Tensor]], fakeCount b: Int, lambdaFeat: Float, featureMatching: Bool,
                               needGradients: Bool = true, _ ctx: Context) -> (GANLosses, Gradients) {
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
            let dd = needGradients ? ctx.arena.tensor(p.n, p.c, p.h, p.w) : nil
            let dg = needGradients ? ctx.arena.tensor(b, p.c, p.h, p.w) : nil
            for i in 0..<m {
                let f = fake.data[i], r = real.data[i]
                let hf = 1 + f, hr = 1 - r
                if hf > 0 { sf += Double(hf) }
                if hr > 0 { sr += Double(hr) }
                sg -= Double(f)
                if let dd, let dg {
                    dd.data[i] = hf > 0 ? inv : 0           // relu'(0) = 0
                    dd.data[m + i] = hr > 0 ? -inv : 0
                    dg.data[i] = -inv
                }
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
                    let dfeat = needGradients ? ctx.arena.tensor(b, t.c, t.h, t.w) : nil
                    for i in 0..<n {
                        let diff = fk.data[i] - rl.data[i]
                        s += Double(abs(diff))
                        dfeat?.data[i] = diff > 0 ? scaleGrad : (diff < 0 ? -scaleGrad : 0)   // |.|'(0) = 0
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
