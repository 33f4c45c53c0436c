import SpadeCore

extension ModelState {
    /// NVlabs `init_weights('xavier', 0.02)`: conv weights ~ N(0, (0.02 * sqrt(2 / (fan_in + fan_out)))^2),
    /// biases 0; spectral-norm u, v = normalize(N(0, 1)); BN running mean 0, var 1, count 0.
    /// Deterministic from `seed` (parameters in registration order).
    public func initializeNVlabs(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for p in params {
            let ptr = values + p.offset
            if p.shape.count == 4 {
                let receptive = p.shape[2] * p.shape[3]
                let fanIn = p.shape[1] * receptive, fanOut = p.shape[0] * receptive
                let std = 0.02 * (2.0 / Double(fanIn + fanOut)).squareRoot()
                for i in 0..<p.count { ptr[i] = Float(rng.gaussian() * std) }
            } else {
                ptr.update(repeating: 0, count: p.count)
            }
        }
        for b in buffers {
            let ptr = bufferValues + b.offset
            if b.name.hasSuffix("weight_u") || b.name.hasSuffix("weight_v") {
                var v = (0..<b.count).map { _ in rng.gaussian() }
                let norm = max(v.reduce(0) { $0 + $1 * $1 }.squareRoot(), Double(TorchConstants.spectralNormEps))
                v = v.map { $0 / norm }
                for i in 0..<b.count { ptr[i] = Float(v[i]) }
            } else {
                ptr.update(repeating: b.name.hasSuffix("running_var") ? 1 : 0, count: b.count)
            }
        }
        for i in counters.indices { counters[i] = 0 }
    }
}
