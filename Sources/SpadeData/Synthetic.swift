import Foundation
import SpadeCore

/// Procedural landscape scenes: a label map (sky on top, ground below, water
/// with beaches, a road in perspective, buildings on the horizon, trees) and
/// an image textured per class (base colour + noise / patterns), both
/// deterministic from (seed, index). The default dataset of `spade-dist
/// train`, and written to disk by `spade-dist synth-data`.
public struct SyntheticScenes: Sendable {
    /// Class ids are indices into this list; with `classes` = K only the
    /// first K are drawn (K >= 3).
    public static let classNames = ["sky", "water", "grass", "trees", "sand", "road", "building", "rock"]
    /// Base (mean) colour of each class; textures add zero-mean variations.
    public static let classColors: [[UInt8]] = [
        [135, 190, 235],  // sky
        [40, 90, 160],    // water
        [90, 160, 60],    // grass
        [30, 90, 35],     // trees
        [220, 200, 140],  // sand
        [90, 90, 90],     // road
        [170, 80, 60],    // building
        [130, 115, 100],  // rock
    ]

    public static let sky: Int32 = 0, water: Int32 = 1, grass: Int32 = 2, trees: Int32 = 3
    public static let sand: Int32 = 4, road: Int32 = 5, building: Int32 = 6, rock: Int32 = 7

    public let seed: UInt64
    public let classes: Int
    public let width: Int
    public let height: Int

    public init(seed: UInt64, classes: Int, width: Int, height: Int) {
        precondition(classes >= 3 && classes <= Self.classNames.count, "synthetic classes must be in 3...8")
        precondition(width > 0 && height > 0)
        self.seed = seed
        self.classes = classes
        self.width = width
        self.height = height
    }

    /// Scene `index`: labels (class ids), instance ids (class * 1000 for
    /// stuff, unique per building / tree) and the RGB image.
    public func generate(index: Int) -> RawSample {
        let W = width, H = height
        var rng = SplitMix64(keys: seed, 0x5343_454E, UInt64(index))  // "SCEN"
        let noise = ValueNoise(seed: rng.next())
        let fw = Double(W), fh = Double(H)
        var label = [Int32](repeating: Self.grass, count: W * H)
        var inst = [Int32](repeating: 0, count: W * H)
        let K = Int32(classes)

        // Horizon with gentle hills: sky above, grass below.
        let horizon0 = fh * rng.uniform(0.28, 0.5)
        let hillAmp = fh * rng.uniform(0.0, 0.06)
        let hillOff = rng.uniform(0, 100)
        let horizon = (0..<W).map { x in horizon0 + hillAmp * Double(noise.at(Double(x) / fw * 3 + hillOff, 0.5)) }
        // Mountains (rock) behind the horizon.
        var ridge = horizon
        if K > Self.rock && rng.unit() < 0.6 {
            let mh = fh * rng.uniform(0.08, 0.22), off = rng.uniform(0, 100)
            ridge = (0..<W).map { x in horizon[x] - mh * (0.55 + 0.45 * Double(noise.at(Double(x) / fw * 4 + off, 7.5))) }
        }
        for y in 0..<H {
            for x in 0..<W {
                let fy = Double(y) + 0.5
                if fy < ridge[x] { label[y * W + x] = Self.sky }
                else if fy < horizon[x] { label[y * W + x] = Self.rock }
            }
        }
        // Water: a sea band below the horizon or a lake, with sand around it.
        let waterKind = rng.unit()
        let withSand = K > Self.sand
        if waterKind < 0.45 {
            let depth = fh * rng.uniform(0.08, 0.25), beach = fh * rng.uniform(0.03, 0.08), off = rng.uniform(0, 100)
            for x in 0..<W {
                let shore = horizon[x] + depth * (0.7 + 0.3 * Double(noise.at(Double(x) / fw * 5 + off, 3.5)))
                for y in 0..<H {
                    let fy = Double(y) + 0.5
                    guard fy >= horizon[x] else { continue }
                    if fy < shore { label[y * W + x] = Self.water }
                    else if withSand && fy < shore + beach { label[y * W + x] = Self.sand }
                }
            }
        } else if waterKind < 0.8 {
            let cx = fw * rng.uniform(0.2, 0.8), cy = horizon0 + (fh - horizon0) * rng.uniform(0.35, 0.75)
            let rx = fw * rng.uniform(0.12, 0.3), ry = (fh - horizon0) * rng.uniform(0.12, 0.25)
            let ring = rng.uniform(1.15, 1.35)
            for y in 0..<H {
                for x in 0..<W where label[y * W + x] == Self.grass {
                    let dx = (Double(x) + 0.5 - cx) / rx, dy = (Double(y) + 0.5 - cy) / ry
                    let r = (dx * dx + dy * dy).squareRoot() * (1 + 0.12 * Double(noise.at(Double(x) / 9, Double(y) / 9 + 40)))
                    if r < 1 { label[y * W + x] = Self.water }
                    else if withSand && r < ring { label[y * W + x] = Self.sand }
                }
            }
        }
        // A road in perspective from the bottom edge to a vanishing point.
        if K > Self.road && rng.unit() < 0.65 {
            let vx = fw * rng.uniform(0.3, 0.7), bx = fw * rng.uniform(0.15, 0.85)
            let bottomHalf = fw * rng.uniform(0.07, 0.16), topHalf = fw * 0.01
            for y in 0..<H {
                let fy = Double(y) + 0.5
                guard fy > horizon0 else { continue }
                let t = (fy - horizon0) / (fh - horizon0)
                let c = vx + (bx - vx) * t, half = topHalf + (bottomHalf - topHalf) * t
                for x in 0..<W where abs(Double(x) + 0.5 - c) < half {
                    let l = label[y * W + x]
                    if l != Self.sky && l != Self.rock && Double(y) + 0.5 >= horizon[x] { label[y * W + x] = Self.road }
                }
            }
        }
        // Buildings standing on the horizon.
        var buildingTint: [Int32: Double] = [:]
        if K > Self.building {
            for k in 0..<rng.int(0, 4) {
                let bw = fw * rng.uniform(0.06, 0.16), bh = fh * rng.uniform(0.08, 0.3)
                let x0 = rng.uniform(0, fw - bw)
                let base = horizon[min(W - 1, Int(x0 + bw / 2))] + fh * rng.uniform(0.0, 0.04)
                let id = Self.building * 1000 + Int32(k + 1)
                buildingTint[id] = rng.uniform(-12, 12)
                for y in max(0, Int(base - bh))..<min(H, Int(base)) {
                    for x in Int(x0)..<min(W, Int(x0 + bw)) {
                        label[y * W + x] = Self.building
                        inst[y * W + x] = id
                    }
                }
            }
        }
        // Trees: discs on grass, larger nearer the viewer.
        for k in 0..<rng.int(2, 9) {
            let cx = rng.uniform(0, fw)
            let cy = rng.uniform(horizon0 + 0.04 * fh, fh)
            let t = (cy - horizon0) / (fh - horizon0)
            let r = fh * (0.02 + 0.07 * t) * rng.uniform(0.8, 1.2)
            let ix = min(W - 1, Int(cx)), iy = min(H - 1, Int(cy))
            guard label[iy * W + ix] == Self.grass else { continue }
            let id = Self.trees * 1000 + Int32(k + 1)
            for y in max(0, Int(cy - r))..<min(H, Int(cy + r) + 1) {
                for x in max(0, Int(cx - r))..<min(W, Int(cx + r) + 1) {
                    let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                    let l = label[y * W + x]
                    if dx * dx + dy * dy < r * r && l != Self.building && l != Self.sky {
                        label[y * W + x] = Self.trees
                        inst[y * W + x] = id
                    }
                }
            }
        }
        for i in 0..<(W * H) where label[i] != Self.trees && label[i] != Self.building { inst[i] = label[i] * 1000 }

        // Textures.
        var image = [UInt8](repeating: 0, count: W * H * 3)
        let ox = rng.uniform(0, 1000), oy = rng.uniform(0, 1000)
        var pixelRng = SplitMix64(keys: seed, 0x5049_5845, UInt64(index))  // "PIXE"
        for y in 0..<H {
            for x in 0..<W {
                let i = y * W + x
                let l = Int(label[i])
                let fx = Double(x) + ox, fy = Double(y) + oy
                let fine = Double(Int(pixelRng.next() >> 56) - 128) / 128  // white noise in [-1, 1)
                let low = Double(noise.fbm(fx / 16, fy / 16))
                var d: (Double, Double, Double)
                switch Int32(l) {
                case Self.sky:
                    let t = (Double(y) + 0.5) / max(horizon[x], 1) - 0.5      // lighter near the horizon
                    let cloud = 14 * max(0, low)
                    d = (20 * t + cloud, 14 * t + cloud, 6 * t + cloud * 0.5)
                case Self.water:
                    let ripple = 9 * sin(Double(y) * 0.9 + 3 * low) + 3 * fine
                    d = (ripple, ripple, ripple)
                case Self.trees:
                    let v = 16 * Double(noise.fbm(fx / 5, fy / 5)) + 5 * fine
                    d = (v, v, v)
                case Self.sand, Self.road:
                    let v = 5 * low + 7 * fine
                    d = (v, v, v)
                case Self.building:
                    let window = (x % 6 < 3 && y % 8 < 4) ? -16.0 : 0
                    let v = (buildingTint[inst[i]] ?? 0) + window + 3 * fine
                    d = (v, v, v)
                default:  // grass, rock
                    let v = 13 * low + 7 * fine
                    d = (v, v, v)
                }
                let base = Self.classColors[l]
                image[3 * i] = clampByte(Double(base[0]) + d.0)
                image[3 * i + 1] = clampByte(Double(base[1]) + d.1)
                image[3 * i + 2] = clampByte(Double(base[2]) + d.2)
            }
        }
        return RawSample(name: String(format: "%05d", index), width: W, height: H,
                         labels: label, image: image, instances: inst)
    }
}

@inline(__always) private func clampByte(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }

/// Smooth 2-D value noise in [-1, 1] (hashed lattice, smoothstep blending).
struct ValueNoise: Sendable {
    let seed: UInt64

    @inline(__always) func lattice(_ ix: Int, _ iy: Int) -> Float {
        let h = SplitMix64.mix(seed ^ (UInt64(bitPattern: Int64(ix)) &* 0x9E37_79B9_7F4A_7C15)
                               ^ (UInt64(bitPattern: Int64(iy)) &* 0xC2B2_AE3D_27D4_EB4F))
        return Float(h >> 40) / Float(1 << 23) - 1
    }

    func at(_ x: Double, _ y: Double) -> Float {
        let x0 = floor(x), y0 = floor(y)
        let ix = Int(x0), iy = Int(y0)
        var tx = Float(x - x0), ty = Float(y - y0)
        tx = tx * tx * (3 - 2 * tx); ty = ty * ty * (3 - 2 * ty)
        let a = lattice(ix, iy), b = lattice(ix + 1, iy), c = lattice(ix, iy + 1), d = lattice(ix + 1, iy + 1)
        return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty
    }

    /// Three octaves, normalised to about [-1, 1].
    func fbm(_ x: Double, _ y: Double) -> Float {
        (at(x, y) + 0.5 * at(2 * x + 17.3, 2 * y + 5.1) + 0.25 * at(4 * x + 3.7, 4 * y + 31.9)) / 1.75
    }
}

/// Writes `count` scenes of `size` x `size` (height round(size / aspect_ratio))
/// in the NVlabs custom layout: `dir/train_label` (8-bit gray class ids),
/// `dir/train_img` (RGB), `dir/train_inst` (16-bit gray instance ids) and
/// `dir/classes.txt`; readable back with dataset_mode custom.
public func writeSyntheticDataset(to dir: String, count: Int, size: Int, classes: Int, seed: UInt64,
                                  aspectRatio: Double = 1, instances: Bool = true) throws {
    guard count > 0 else { throw DataError(path: "count", "must be positive, got \(count)") }
    guard size > 0 else { throw DataError(path: "size", "must be positive, got \(size)") }
    guard classes >= 3 && classes <= SyntheticScenes.classNames.count else {
        throw DataError(path: "classes", "must be in 3...\(SyntheticScenes.classNames.count), got \(classes)")
    }
    let h = max(1, Int((Double(size) / aspectRatio).rounded(.toNearestOrEven)))
    let scenes = SyntheticScenes(seed: seed, classes: classes, width: size, height: h)
    let subdirs = instances ? ["train_label", "train_img", "train_inst"] : ["train_label", "train_img"]
    for sub in subdirs {
        do {
            try FileManager.default.createDirectory(atPath: joinPath(dir, sub), withIntermediateDirectories: true)
        } catch {
            throw DataError(path: joinPath(dir, sub), "cannot create directory: \(error.localizedDescription)")
        }
    }
    let digits = max(5, String(count - 1).count)
    for i in 0..<count {
        let s = scenes.generate(index: i)
        let name = String(repeating: "0", count: max(0, digits - String(i).count)) + String(i) + ".png"
        try writePNG(path: joinPath(joinPath(dir, "train_label"), name), width: size, height: h, channels: 1,
                     pixels: s.labels.map { UInt8($0) })
        try writePNG(path: joinPath(joinPath(dir, "train_img"), name), width: size, height: h, channels: 3, pixels: s.image)
        if instances, let inst = s.instances {
            try writePNG16(path: joinPath(joinPath(dir, "train_inst"), name), width: size, height: h,
                           pixels: inst.map { UInt16($0) })
        }
    }
    let text = (0..<classes).map { "\($0) \(SyntheticScenes.classNames[$0])" }.joined(separator: "\n") + "\n"
    try writeFileAtomically(path: joinPath(dir, "classes.txt"), bytes: Array(text.utf8))
}

/// Fraction of pixels whose colour (after a 3x3 box blur when `blur`) is
/// nearest to the mean colour of their labelled class, over the first
/// `classes` synthetic classes. `image`: (3, H, W) normalised to [-1, 1];
/// `labels`: (H, W) class ids (ids >= classes are ignored). About 0.95+ on
/// real synthetic images, about 1/classes on noise: `spade-dist eval` uses it
/// on generated images to show that training works.
public func resegmentationAccuracy(image: [Float], labels: [Int32], classes: Int, blur: Bool = true) -> Double {
    let hw = labels.count
    precondition(image.count == 3 * hw, "resegmentationAccuracy: image must be (3, H, W) for \(hw) labels")
    precondition(classes >= 1 && classes <= SyntheticScenes.classColors.count)
    // Infer W from nothing: a blur needs the width, so treat the map as square
    // unless it is not; callers with non-square maps use the (height, width) overload.
    let side = Int(Double(hw).squareRoot())
    if blur && side * side == hw {
        return resegmentationAccuracy(image: image, labels: labels, height: side, width: side, classes: classes, blur: true)
    }
    return resegmentationAccuracy(image: image, labels: labels, height: 1, width: hw, classes: classes, blur: false)
}

/// `resegmentationAccuracy` for an H x W map.
public func resegmentationAccuracy(image: [Float], labels: [Int32], height: Int, width: Int, classes: Int, blur: Bool = true) -> Double {
    let hw = height * width
    precondition(labels.count == hw && image.count == 3 * hw)
    var rgb = [Float](repeating: 0, count: 3 * hw)
    for i in 0..<(3 * hw) { rgb[i] = (image[i] * 0.5 + 0.5) * 255 }
    if blur {
        var b = rgb
        for c in 0..<3 {
            for y in 0..<height {
                for x in 0..<width {
                    var s: Float = 0, n: Float = 0
                    for yy in max(0, y - 1)...min(height - 1, y + 1) {
                        for xx in max(0, x - 1)...min(width - 1, x + 1) { s += rgb[c * hw + yy * width + xx]; n += 1 }
                    }
                    b[c * hw + y * width + x] = s / n
                }
            }
        }
        rgb = b
    }
    let colors = SyntheticScenes.classColors.prefix(classes).map { $0.map { Float($0) } }
    var correct = 0, total = 0
    for i in 0..<hw {
        let l = Int(labels[i])
        guard l >= 0 && l < classes else { continue }
        total += 1
        var best = 0
        var bestD = Float.infinity
        for (k, c) in colors.enumerated() {
            let dr = rgb[i] - c[0], dg = rgb[hw + i] - c[1], db = rgb[2 * hw + i] - c[2]
            let d = dr * dr + dg * dg + db * db
            if d < bestD { bestD = d; best = k }
        }
        if best == l { correct += 1 }
    }
    return total == 0 ? 0 : Double(correct) / Double(total)
}

/// Colour of class `c` in sample grids: the synthetic class colours for
/// 0...7, then the Pascal VOC colour map; don't-care is black.
public func paletteColor(_ c: Int) -> [UInt8] {
    if c >= 0 && c < SyntheticScenes.classColors.count { return SyntheticScenes.classColors[c] }
    var r = 0, g = 0, b = 0, v = c
    for shift in stride(from: 7, through: 0, by: -1) {
        r |= (v & 1) << shift; g |= ((v >> 1) & 1) << shift; b |= ((v >> 2) & 1) << shift
        v >>= 3
        if v == 0 { break }
    }
    return [UInt8(r), UInt8(g), UInt8(b)]
}

/// Class map (H*W) -> RGB (H*W*3) with `paletteColor`; the don't-care index
/// (`dontcare`, e.g. label_nc when contain_dontcare_label, and 255) is black.
public func colorize(_ labels: [Int32], dontcare: Int32? = nil) -> [UInt8] {
    var table = [[UInt8]](repeating: [0, 0, 0], count: 256)
    for c in 0..<255 { table[c] = paletteColor(c) }
    if let d = dontcare, d >= 0 && d < 256 { table[Int(d)] = [0, 0, 0] }
    var out = [UInt8](repeating: 0, count: labels.count * 3)
    for (i, l) in labels.enumerated() where l >= 0 && l < 256 {
        let c = table[Int(l)]
        out[3 * i] = c[0]; out[3 * i + 1] = c[1]; out[3 * i + 2] = c[2]
    }
    return out
}
