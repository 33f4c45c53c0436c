import Foundation
import SpadeCore

// NVlabs preprocess modes (data/base_dataset.py get_params / get_transform):
// resize / scale, then crop, then flip. Labels and instance maps are resized
// nearest (PIL NEAREST), images bicubic (PIL BICUBIC with antialiasing).

/// The geometric transform of one sample: resize the source to
/// (resizeWidth, resizeHeight), take the window at (cropX, cropY) of the
/// output size, mirror it horizontally if `flip`.
public struct GeometryPlan: Sendable, Equatable {
    public var sourceWidth: Int
    public var sourceHeight: Int
    public var resizeWidth: Int
    public var resizeHeight: Int
    public var cropX: Int
    public var cropY: Int
    public var outWidth: Int
    public var outHeight: Int
    public var flip: Bool

    public var resizes: Bool { resizeWidth != sourceWidth || resizeHeight != sourceHeight }
    public var isIdentity: Bool {
        !resizes && !flip && cropX == 0 && cropY == 0 && outWidth == sourceWidth && outHeight == sourceHeight
    }
}

/// Why a source size does not fit the configured preprocessing.
struct GeometryProblem: Error { var message: String }

/// NVlabs get_params + the sizes of get_transform for a `width` x `height`
/// source. Random draws (crop x, crop y, flip; in that order, as NVlabs)
/// come from `rng`. Generalisations (documented in README.md): with
/// aspect_ratio != 1 the crop window is crop_size x round(crop_size /
/// aspect_ratio) and resize_and_crop resizes to load_size x round(load_size /
/// aspect_ratio); scale_shortside scales the short side to load_size (NVlabs'
/// code keeps the old short side, a bug); a window larger than the image is
/// an error instead of zero padding; modes without crop must produce exactly
/// the batch size (so `none` never resizes).
func planGeometry(width w: Int, height h: Int, options o: DatasetOptions, rng: inout SplitMix64) throws -> GeometryPlan {
    let cw = o.outputWidth, ch = o.outputHeight
    let load = o.loadSize
    var rw = w, rh = h
    let mode = o.preprocessMode
    switch mode {
    case "resize_and_crop":
        rw = load
        rh = Int((Double(load) / o.aspectRatio).rounded(.toNearestOrEven))
    case "scale_width", "scale_width_and_crop":
        if w != load {
            rw = load
            rh = Int(Double(load) * Double(h) / Double(w))
        }
    case "scale_shortside", "scale_shortside_and_crop":
        let ss = min(w, h), ls = max(w, h)
        if ss != load {
            let nl = Int(Double(load) * Double(ls) / Double(ss))
            if w == ss { rw = load; rh = nl } else { rw = nl; rh = load }
        }
    case "fixed":
        rw = cw; rh = ch
    default: // "crop", "none"
        // none: NVlabs rounds each side to a multiple of 32 (make_power_2);
        // batches need exactly the configured size, which is such a multiple,
        // so the image is used as is and must already have that size.
        break
    }
    if rw < 1 || rh < 1 {
        throw GeometryProblem(message: "preprocess_mode \(mode) turns \(w)x\(h) into an empty image")
    }
    let crops = mode.hasSuffix("crop")
    let x = rng.int(0, max(0, rw - cw))
    let y = rng.int(0, max(0, rh - ch))
    let flip = !o.noFlip && rng.unit() > 0.5
    if crops {
        if rw < cw || rh < ch {
            let what = rw == w && rh == h ? "\(w)x\(h)" : "\(w)x\(h) (\(rw)x\(rh) after resizing)"
            throw GeometryProblem(message: "image \(what) is smaller than the \(cw)x\(ch) crop (crop_size, aspect_ratio)")
        }
        return GeometryPlan(sourceWidth: w, sourceHeight: h, resizeWidth: rw, resizeHeight: rh,
                            cropX: x, cropY: y, outWidth: cw, outHeight: ch, flip: flip)
    }
    if rw != cw || rh != ch {
        let what = rw == w && rh == h ? "image \(w)x\(h)" : "image \(w)x\(h) (\(rw)x\(rh) after resizing)"
        throw GeometryProblem(message: "\(what) does not match the batch size \(cw)x\(ch) (crop_size, aspect_ratio) under preprocess_mode \(mode); use a *_and_crop mode or fixed")
    }
    return GeometryPlan(sourceWidth: w, sourceHeight: h, resizeWidth: rw, resizeHeight: rh,
                        cropX: 0, cropY: 0, outWidth: cw, outHeight: ch, flip: flip)
}

/// How Pillow finds the source pixel of a nearest-neighbour resize (`Image.resize(NEAREST)`),
/// which NVlabs uses for label and instance maps: for 8-bit, palette and RGB images
/// (ImagingScaleAffine) the source position `(d + 0.5) * in / out` is accumulated by repeated
/// addition of `in / out`; for 16-bit images (the generic affine transform) it is computed
/// for each d. Both truncate; they differ only where a position falls on a pixel edge.
public enum NearestSampling: Sendable, Equatable {
    case accumulated
    case direct

    /// The path Pillow takes for this file.
    init(_ img: DecodedImage) {
        if case .u16 = img.pixels, img.channels == 1 { self = .direct } else { self = .accumulated }
    }

    /// Source index of every output index 0..<outSize.
    func sourceIndices(inSize: Int, outSize: Int) -> [Int] {
        let scale = Double(inSize) / Double(outSize)
        var out = [Int](repeating: 0, count: outSize)
        var position = scale * 0.5
        for d in 0..<outSize {
            let p = self == .accumulated ? position : scale * (Double(d) + 0.5)
            out[d] = min(Int(p), inSize - 1)
            position += scale
        }
        return out
    }
}

/// Output column/row -> source column/row for nearest sampling, composed with crop and flip.
private func nearestMaps(_ p: GeometryPlan, sampling: NearestSampling) -> (cols: [Int], rows: [Int]) {
    let resizedCols = sampling.sourceIndices(inSize: p.sourceWidth, outSize: p.resizeWidth)
    let resizedRows = sampling.sourceIndices(inSize: p.sourceHeight, outSize: p.resizeHeight)
    let cols = (0..<p.outWidth).map { ox in resizedCols[p.cropX + (p.flip ? p.outWidth - 1 - ox : ox)] }
    let rows = (0..<p.outHeight).map { oy in resizedRows[p.cropY + oy] }
    return (cols, rows)
}

/// Applies the plan to a single-channel integer map (labels, instance ids).
func transformNearest(_ src: [Int32], plan p: GeometryPlan, sampling: NearestSampling = .accumulated) -> [Int32] {
    if p.isIdentity { return src }
    let (cols, rows) = nearestMaps(p, sampling: sampling)
    var out = [Int32](repeating: 0, count: p.outWidth * p.outHeight)
    src.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { o in
            for oy in 0..<p.outHeight {
                let srow = rows[oy] * p.sourceWidth
                let orow = oy * p.outWidth
                for ox in 0..<p.outWidth { o[orow + ox] = s[srow + cols[ox]] }
            }
        }
    }
    return out
}

/// Pillow's bicubic resampling coefficients (libImaging/Resample.c precompute_coeffs and
/// normalize_coeffs_8bpc): for output index d, taps start[d] ..< start[d] + count[d] with
/// fixed-point weights (22 fractional bits) at weights[d * stride ...]. Bicubic a = -0.5,
/// support widened by the downscale factor (antialiasing).
struct ResampleCoefficients {
    static let precisionBits = 22
    var start: [Int]
    var count: [Int]
    var weights: [Int32]
    var stride: Int

    init(inSize: Int, outSize: Int) {
        func cubic(_ x0: Double) -> Double {
            let a = -0.5, x = abs(x0)
            if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        }
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let inverseFilterScale = 1.0 / filterScale
        stride = Int(ceil(support)) * 2 + 1
        start = [Int](repeating: 0, count: outSize)
        count = [Int](repeating: 0, count: outSize)
        weights = [Int32](repeating: 0, count: outSize * stride)
        let one = Double(1 << Self.precisionBits)
        for d in 0..<outSize {
            let center = (Double(d) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let n = min(Int(center + support + 0.5), inSize) - xmin
            var k = [Double](repeating: 0, count: n)
            var total = 0.0
            for i in 0..<n {
                k[i] = cubic((Double(i + xmin) - center + 0.5) * inverseFilterScale)
                total += k[i]
            }
            start[d] = xmin
            count[d] = n
            for i in 0..<n {
                let w = total != 0 ? k[i] / total : k[i]
                weights[d * stride + i] = Int32(w < 0 ? -0.5 + w * one : 0.5 + w * one)
            }
        }
    }

    /// Pillow's clip8: a fixed-point sum (rounding half already added) as a byte.
    @inline(__always) static func clip8(_ v: Int32) -> UInt8 {
        if v >= Int32(1 << (precisionBits + 8)) { return 255 }
        if v <= 0 { return 0 }
        return UInt8(v >> Int32(precisionBits))
    }
}

/// Applies the plan to an RGB image (H*W*3): Pillow's bicubic resize (computed only for the
/// cropped window), crop, flip; bit-identical to NVlabs' PIL transforms (Pillow 13:
/// ImagingResampleInner runs the vertical pass first when the height shrinks by more than twice
/// as many pixels as the width, else the horizontal pass first; earlier Pillows always ran the
/// horizontal pass first, which can differ by a level or two in some pixels).
func transformImage(_ src: [UInt8], plan p: GeometryPlan) -> [UInt8] {
    if p.isIdentity { return src }
    let ow = p.outWidth, oh = p.outHeight
    let colTargets = (0..<ow).map { p.cropX + (p.flip ? ow - 1 - $0 : $0) }   // resized columns
    let rowTargets = (0..<oh).map { p.cropY + $0 }
    // A dimension whose size does not change is not resampled (Pillow's need_horizontal / need_vertical).
    let hc = p.resizeWidth != p.sourceWidth ? ResampleCoefficients(inSize: p.sourceWidth, outSize: p.resizeWidth) : nil
    let vc = p.resizeHeight != p.sourceHeight ? ResampleCoefficients(inSize: p.sourceHeight, outSize: p.resizeHeight) : nil
    // The source window the output needs: every output pixel is as in the full resized image.
    func span(_ c: ResampleCoefficients?, _ targets: [Int]) -> Range<Int> {
        guard let c else { return targets.min()!..<(targets.max()! + 1) }
        return targets.map { c.start[$0] }.min()!..<targets.map { c.start[$0] + c.count[$0] }.max()!
    }
    let rows = span(vc, rowTargets), cols = span(hc, colTargets)
    var window = [UInt8](repeating: 0, count: rows.count * cols.count * 3)
    for (r, y) in rows.enumerated() {
        let from = (y * p.sourceWidth + cols.lowerBound) * 3
        window.replaceSubrange((r * cols.count * 3)..<((r + 1) * cols.count * 3), with: src[from..<(from + cols.count * 3)])
    }
    let shrinkY = p.sourceHeight - p.resizeHeight, shrinkX = p.sourceWidth - p.resizeWidth
    if shrinkY > 0 && shrinkY > shrinkX * 2 {
        let v = resamplePass(window, inCols: cols.count, inRows: rows.count, horizontal: false,
                             targets: rowTargets, coefficients: vc, offset: rows.lowerBound)
        return resamplePass(v, inCols: cols.count, inRows: oh, horizontal: true,
                            targets: colTargets, coefficients: hc, offset: cols.lowerBound)
    }
    let h = resamplePass(window, inCols: cols.count, inRows: rows.count, horizontal: true,
                         targets: colTargets, coefficients: hc, offset: cols.lowerBound)
    return resamplePass(h, inCols: ow, inRows: rows.count, horizontal: false,
                        targets: rowTargets, coefficients: vc, offset: rows.lowerBound)
}

/// One pass of Pillow's 8-bit resampling over RGB bytes (`inRows` x `inCols`, row-major). Along
/// x (`horizontal`) output column j is resized column `targets[j]`: the fixed-point sum of its
/// taps (source columns, at input column `source - offset`), rounded and clipped to a byte; rows
/// are kept. Along y the same with rows. Without coefficients (the dimension keeps its size)
/// the target is copied.
private func resamplePass(_ input: [UInt8], inCols: Int, inRows: Int, horizontal: Bool, targets: [Int],
                          coefficients c: ResampleCoefficients?, offset: Int) -> [UInt8] {
    let outCols = horizontal ? targets.count : inCols, outRows = horizontal ? inRows : targets.count
    var out = [UInt8](repeating: 0, count: outCols * outRows * 3)
    let half = Int32(1 << (ResampleCoefficients.precisionBits - 1))
    // Byte strides along the pass's axis and across it, in the input and the output.
    let step = horizontal ? 3 : inCols * 3, across = horizontal ? inCols * 3 : 3
    let outStep = horizontal ? 3 : outCols * 3, outAcross = horizontal ? outCols * 3 : 3
    let count = horizontal ? inRows : inCols
    input.withUnsafeBufferPointer { s in
        out.withUnsafeMutableBufferPointer { o in
            for (j, t) in targets.enumerated() {
                guard let c else {
                    for b in 0..<count {
                        for ch in 0..<3 { o[j * outStep + b * outAcross + ch] = s[(t - offset) * step + b * across + ch] }
                    }
                    continue
                }
                let first = c.start[t] - offset, n = c.count[t], wb = t * c.stride
                for b in 0..<count {
                    var r = half, g = half, bl = half
                    var si = first * step + b * across
                    for k in 0..<n {
                        let wk = c.weights[wb + k]
                        r &+= Int32(s[si]) &* wk; g &+= Int32(s[si + 1]) &* wk; bl &+= Int32(s[si + 2]) &* wk
                        si += step
                    }
                    let oi = j * outStep + b * outAcross
                    o[oi] = ResampleCoefficients.clip8(r)
                    o[oi + 1] = ResampleCoefficients.clip8(g)
                    o[oi + 2] = ResampleCoefficients.clip8(bl)
                }
            }
        }
    }
    return out
}
