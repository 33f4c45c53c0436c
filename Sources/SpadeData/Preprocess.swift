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

/// Output column/row -> source column/row for nearest sampling (PIL NEAREST:
/// source = floor((d + 0.5) * in / out)), composed with crop and flip.
private func nearestMaps(_ p: GeometryPlan) -> (cols: [Int], rows: [Int]) {
    let sx = Double(p.sourceWidth) / Double(p.resizeWidth)
    let sy = Double(p.sourceHeight) / Double(p.resizeHeight)
    let cols = (0..<p.outWidth).map { ox -> Int in
        let rx = p.cropX + (p.flip ? p.outWidth - 1 - ox : ox)
        return min(Int((Double(rx) + 0.5) * sx), p.sourceWidth - 1)
    }
    let rows = (0..<p.outHeight).map { oy -> Int in
        min(Int((Double(p.cropY + oy) + 0.5) * sy), p.sourceHeight - 1)
    }
    return (cols, rows)
}

/// Applies the plan to a single-channel integer map (labels, instance ids).
func transformNearest(_ src: [Int32], plan p: GeometryPlan) -> [Int32] {
    if p.isIdentity { return src }
    let (cols, rows) = nearestMaps(p)
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

/// Separable resampling weights (Pillow's precompute_coeffs): for output
/// index d, taps start[d] ..< start[d]+count[d] with weights w[d*stride...].
struct ResampleCoefficients {
    var start: [Int]
    var count: [Int]
    var weights: [Float]
    var stride: Int

    /// Bicubic (a = -0.5) with support widened by the downscale factor (antialias).
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
        stride = Int(ceil(support)) * 2 + 1
        start = [Int](repeating: 0, count: outSize)
        count = [Int](repeating: 0, count: outSize)
        weights = [Float](repeating: 0, count: outSize * stride)
        for d in 0..<outSize {
            let center = (Double(d) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)
            let n = min(min(Int(center + support + 0.5), inSize) - xmin, stride)
            var k = [Double](repeating: 0, count: n)
            var total = 0.0
            for i in 0..<n {
                k[i] = cubic((Double(i + xmin) - center + 0.5) / filterScale)
                total += k[i]
            }
            start[d] = xmin
            count[d] = n
            for i in 0..<n { weights[d * stride + i] = Float(total != 0 ? k[i] / total : 0) }
        }
    }
}

/// Applies the plan to an RGB image (H*W*3): bicubic resize (computed only
/// for the cropped window), crop, flip.
func transformImage(_ src: [UInt8], plan p: GeometryPlan) -> [UInt8] {
    if p.isIdentity { return src }
    let ow = p.outWidth, oh = p.outHeight, sw = p.sourceWidth
    var out = [UInt8](repeating: 0, count: ow * oh * 3)
    if !p.resizes {
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                for oy in 0..<oh {
                    let srow = (p.cropY + oy) * sw
                    for ox in 0..<ow {
                        let sx = p.cropX + (p.flip ? ow - 1 - ox : ox)
                        let si = (srow + sx) * 3, oi = (oy * ow + ox) * 3
                        o[oi] = s[si]; o[oi + 1] = s[si + 1]; o[oi + 2] = s[si + 2]
                    }
                }
            }
        }
        return out
    }
    let hc = ResampleCoefficients(inSize: p.sourceWidth, outSize: p.resizeWidth)
    let vc = ResampleCoefficients(inSize: p.sourceHeight, outSize: p.resizeHeight)
    // Source rows needed by the cropped output rows.
    var yLo = Int.max, yHi = 0
    for oy in 0..<oh {
        let r = p.cropY + oy
        yLo = min(yLo, vc.start[r]); yHi = max(yHi, vc.start[r] + vc.count[r])
    }
    // Horizontal pass: tmp[(y - yLo), ox, c] over the cropped (and flipped) columns.
    var tmp = [Float](repeating: 0, count: (yHi - yLo) * ow * 3)
    src.withUnsafeBufferPointer { s in
        hc.weights.withUnsafeBufferPointer { wts in
            tmp.withUnsafeMutableBufferPointer { t in
                for ox in 0..<ow {
                    let rx = p.cropX + (p.flip ? ow - 1 - ox : ox)
                    let x0 = hc.start[rx], n = hc.count[rx], wb = rx * hc.stride
                    for y in yLo..<yHi {
                        var r: Float = 0, g: Float = 0, b: Float = 0
                        var si = (y * sw + x0) * 3
                        for k in 0..<n {
                            let wk = wts[wb + k]
                            r += wk * Float(s[si]); g += wk * Float(s[si + 1]); b += wk * Float(s[si + 2])
                            si += 3
                        }
                        let ti = ((y - yLo) * ow + ox) * 3
                        t[ti] = r; t[ti + 1] = g; t[ti + 2] = b
                    }
                }
            }
        }
    }
    // Vertical pass, rounding and clamping to bytes.
    @inline(__always) func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, (v).rounded()))) }
    tmp.withUnsafeBufferPointer { t in
        vc.weights.withUnsafeBufferPointer { wts in
            out.withUnsafeMutableBufferPointer { o in
                for oy in 0..<oh {
                    let ry = p.cropY + oy
                    let y0 = vc.start[ry] - yLo, n = vc.count[ry], wb = ry * vc.stride
                    for i in 0..<(ow * 3) {
                        var acc: Float = 0
                        for k in 0..<n { acc += wts[wb + k] * t[(y0 + k) * ow * 3 + i] }
                        o[oy * ow * 3 + i] = byte(acc)
                    }
                }
            }
        }
    }
    return out
}
