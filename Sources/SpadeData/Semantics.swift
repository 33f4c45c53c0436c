// Label maps -> generator input (reference/README.md "Input preprocessing"):
// one-hot over label_nc (+1 don't-care) channels, then the instance edge
// channel; images normalised as (x/255 - 0.5)/0.5 in float32.

/// `(Float(v) / 255 - 0.5) / 0.5` for every byte v, evaluated in float32 in
/// exactly that order (torchvision ToTensor + Normalize; not `v*2/255 - 1`).
public let imageNormalizationLUT: [Float] = (0..<256).map { v in (Float(v) / 255 - 0.5) / 0.5 }

/// What is wrong with a raw label map, or nil. Raw values are the stored ids:
/// 255 is don't-care (legal only with contain_dontcare_label), every other
/// value must be in 0..<label_nc.
public func labelProblem(_ raw: [Int32], labelNC: Int, containDontcare: Bool) -> String? {
    var maxBad: Int32 = -1
    var badCount = 0
    var minNegative: Int32 = 0
    var dontcareCount = 0
    let nc = Int32(labelNC)
    for v in raw where v >= nc || v < 0 {
        if v == 255 { dontcareCount += 1; continue }
        badCount += 1
        if v < 0 { minNegative = min(minNegative, v) } else { maxBad = max(maxBad, v) }
    }
    var problems: [String] = []
    if badCount > 0 {
        let v = maxBad >= 0 ? maxBad : minNegative
        problems.append("class id \(v) >= label_nc \(labelNC) (\(badCount) pixel\(badCount == 1 ? "" : "s") out of range)")
    }
    if dontcareCount > 0 && !containDontcare {
        problems.append("value 255 (don't-care) in \(dontcareCount) pixel\(dontcareCount == 1 ? "" : "s") but contain_dontcare_label is false")
    }
    return problems.isEmpty ? nil : problems.joined(separator: "; ")
}

/// Raw label ids -> channel indices (255 -> label_nc); throws naming `path`
/// when an id is out of range (reference `label_to_index`).
public func labelToIndex(_ raw: [Int32], labelNC: Int, containDontcare: Bool, path: String = "<labels>") throws -> [Int32] {
    if let p = labelProblem(raw, labelNC: labelNC, containDontcare: containDontcare) {
        throw DataError(path: path, p)
    }
    let nc = Int32(labelNC)
    return raw.map { $0 == 255 ? nc : $0 }
}

/// Instance ids (H*W) -> edge map (H*W): 1 where a 4-neighbour inside the
/// image has a different id (both sides of a boundary are marked).
public func instanceEdges(_ ids: [Int32], height: Int, width: Int) -> [Float] {
    precondition(ids.count == height * width)
    var e = [Float](repeating: 0, count: ids.count)
    ids.withUnsafeBufferPointer { p in
        e.withUnsafeMutableBufferPointer { o in
            for y in 0..<height {
                let row = y * width
                for x in 0..<width {
                    let v = p[row + x]
                    if (x > 0 && p[row + x - 1] != v) || (x + 1 < width && p[row + x + 1] != v)
                        || (y > 0 && p[row - width + x] != v) || (y + 1 < height && p[row + width + x] != v) {
                        o[row + x] = 1
                    }
                }
            }
        }
    }
    return e
}

/// Writes one sample's semantics (C, H, W) into `out` (which must be zeroed):
/// one-hot of `index` (values already mapped, < oneHotChannels), then, when
/// `instances` is given, the edge map as the last channel.
func writeSemantics(index: [Int32], instances: [Int32]?, height: Int, width: Int,
                    oneHotChannels: Int, into out: UnsafeMutableBufferPointer<Float>) {
    let hw = height * width
    precondition(index.count == hw)
    precondition(out.count == (oneHotChannels + (instances == nil ? 0 : 1)) * hw)
    index.withUnsafeBufferPointer { idx in
        for i in 0..<hw { out[Int(idx[i]) * hw + i] = 1 }
    }
    if let inst = instances {
        let e = instanceEdges(inst, height: height, width: width)
        let base = oneHotChannels * hw
        for i in 0..<hw { out[base + i] = e[i] }
    }
}

/// Batch version of the reference `make_semantics`: raw labels (B, H, W) and
/// optional instances (B, H, W) -> (B, C, H, W).
public func makeSemantics(rawLabels: [Int32], instances: [Int32]?, batch: Int, height: Int, width: Int,
                          labelNC: Int, containDontcare: Bool) throws -> [Float] {
    let hw = height * width
    let oneHot = labelNC + (containDontcare ? 1 : 0)
    let c = oneHot + (instances == nil ? 0 : 1)
    var out = [Float](repeating: 0, count: batch * c * hw)
    try out.withUnsafeMutableBufferPointer { o in
        for b in 0..<batch {
            let idx = try labelToIndex(Array(rawLabels[(b * hw)..<((b + 1) * hw)]), labelNC: labelNC, containDontcare: containDontcare)
            let inst = instances.map { Array($0[(b * hw)..<((b + 1) * hw)]) }
            writeSemantics(index: idx, instances: inst, height: height, width: width, oneHotChannels: oneHot,
                           into: UnsafeMutableBufferPointer(rebasing: o[(b * c * hw)..<((b + 1) * c * hw)]))
        }
    }
    return out
}

/// uint8 (B, H, W, 3) -> float32 (B, 3, H, W) via `imageNormalizationLUT`.
public func normalizeImage(_ hwc: [UInt8], batch: Int, height: Int, width: Int) -> [Float] {
    let hw = height * width
    precondition(hwc.count == batch * hw * 3)
    var out = [Float](repeating: 0, count: hwc.count)
    out.withUnsafeMutableBufferPointer { o in
        for b in 0..<batch {
            writeNormalizedImage(Array(hwc[(b * hw * 3)..<((b + 1) * hw * 3)]), pixels: hw,
                                 into: UnsafeMutableBufferPointer(rebasing: o[(b * 3 * hw)..<((b + 1) * 3 * hw)]))
        }
    }
    return out
}

/// One RGB image (H*W*3 interleaved) -> (3, H, W) normalised.
func writeNormalizedImage(_ rgb: [UInt8], pixels hw: Int, into out: UnsafeMutableBufferPointer<Float>) {
    imageNormalizationLUT.withUnsafeBufferPointer { lut in
        rgb.withUnsafeBufferPointer { p in
            for i in 0..<hw {
                out[i] = lut[Int(p[3 * i])]
                out[hw + i] = lut[Int(p[3 * i + 1])]
                out[2 * hw + i] = lut[Int(p[3 * i + 2])]
            }
        }
    }
}
