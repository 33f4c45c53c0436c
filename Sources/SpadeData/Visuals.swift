// How NVlabs' test.py turns tensors into the PNGs it saves (util/util.py tensor2im,
// tensor2label, labelcolormap), so results written here equal its files.

/// NVlabs' `labelcolormap(n)` for n other than 35 and 182 (there NVlabs switches to the
/// Cityscapes palette and recolours five COCO classes): colour i spreads the bits of i + 1
/// over the high bits of r, g and b.
public func nvlabsLabelColormap(_ n: Int) -> [[UInt8]] {
    (0..<n).map { i in
        var r = 0, g = 0, b = 0, id = i + 1
        for j in 0..<7 {
            r ^= (id & 1) << (7 - j)
            g ^= ((id >> 1) & 1) << (7 - j)
            b ^= ((id >> 2) & 1) << (7 - j)
            id >>= 3
        }
        return [UInt8(r), UInt8(g), UInt8(b)]
    }
}

/// Class indices (H*W; don't-care = label_nc) -> RGB (H*W*3) as test.py's `input_label`:
/// `tensor2label(label, label_nc + 2)`.
public func nvlabsColorizedLabels(_ labels: [Int32], labelNC: Int) -> [UInt8] {
    let map = nvlabsLabelColormap(labelNC + 2)
    var out = [UInt8](repeating: 0, count: labels.count * 3)
    for (i, l) in labels.enumerated() where l >= 0 && Int(l) < map.count {
        out[3 * i] = map[Int(l)][0]; out[3 * i + 1] = map[Int(l)][1]; out[3 * i + 2] = map[Int(l)][2]
    }
    return out
}

/// Image `index` of an NCHW [-1, 1] tensor as RGB bytes (H*W*3), as `tensor2im`:
/// `(x + 1) / 2 * 255` in float32, clipped to 0...255, truncated (not rounded).
public func nvlabsImageBytes(_ t: [Float], index: Int, height h: Int, width w: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: h * w * 3)
    for c in 0..<3 {
        for p in 0..<(h * w) {
            let v = (t[(index * 3 + c) * h * w + p] + 1) / 2 * 255
            out[p * 3 + c] = v.isNaN ? 0 : UInt8(min(max(v, 0), 255))
        }
    }
    return out
}
