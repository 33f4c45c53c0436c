/// Geometry of a 2-D convolution (square kernel, symmetric padding).
public struct ConvGeometry: Equatable, Sendable {
    public let cin: Int, kernel: Int, stride: Int, pad: Int
    public let h: Int, w: Int
    public var outH: Int { (h + 2 * pad - kernel) / stride + 1 }
    public var outW: Int { (w + 2 * pad - kernel) / stride + 1 }
    /// Rows of the column matrix: one per (input channel, ky, kx).
    public var colRows: Int { cin * kernel * kernel }

    public init(cin: Int, kernel: Int, stride: Int, pad: Int, h: Int, w: Int) {
        self.cin = cin; self.kernel = kernel; self.stride = stride; self.pad = pad; self.h = h; self.w = w
    }
}

/// Unfolds `samples` consecutive NCHW samples into col[colRows][samples * outH * outW].
/// Column index = s * outH*outW + oy * outW + ox; row index = (c * k + ky) * k + kx,
/// which matches the flattened weight [Cout, Cin, k, k].
public func im2col(_ x: UnsafePointer<Float>, samples: Int, _ g: ConvGeometry, col: UnsafeMutablePointer<Float>) {
    let oh = g.outH, ow = g.outW, k = g.kernel, s = g.stride, p = g.pad
    let planeOut = oh * ow, ld = samples * planeOut, planeIn = g.h * g.w
    for c in 0..<g.cin {
        for ky in 0..<k {
            for kx in 0..<k {
                let row = col + ((c * k + ky) * k + kx) * ld
                let (oxLo, oxHi) = inBoundsColumns(kx, g)
                for n in 0..<samples {
                    let src = x + (n * g.cin + c) * planeIn
                    let dstSample = row + n * planeOut
                    for oy in 0..<oh {
                        let dst = dstSample + oy * ow
                        let iy = oy * s + ky - p
                        if iy < 0 || iy >= g.h || oxLo >= oxHi {
                            dst.update(repeating: 0, count: ow)
                            continue
                        }
                        if oxLo > 0 { dst.update(repeating: 0, count: oxLo) }
                        let srcRow = src + iy * g.w + kx - p
                        if s == 1 {
                            (dst + oxLo).update(from: srcRow + oxLo, count: oxHi - oxLo)
                        } else {
                            for ox in oxLo..<oxHi { dst[ox] = srcRow[ox * s] }
                        }
                        if oxHi < ow { (dst + oxHi).update(repeating: 0, count: ow - oxHi) }
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: adds every column entry back into its input pixel.
public func col2imAdd(_ col: UnsafePointer<Float>, samples: Int, _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>) {
    let oh = g.outH, ow = g.outW, k = g.kernel, s = g.stride, p = g.pad
    let planeOut = oh * ow, ld = samples * planeOut, planeIn = g.h * g.w
    for c in 0..<g.cin {
        for ky in 0..<k {
            for kx in 0..<k {
                let row = col + ((c * k + ky) * k + kx) * ld
                let (oxLo, oxHi) = inBoundsColumns(kx, g)
                if oxLo >= oxHi { continue }
                for n in 0..<samples {
                    let dst = dx + (n * g.cin + c) * planeIn
                    let srcSample = row + n * planeOut
                    for oy in 0..<oh {
                        let iy = oy * s + ky - p
                        if iy < 0 || iy >= g.h { continue }
                        let src = srcSample + oy * ow
                        let dstRow = dst + iy * g.w + kx - p
                        if s == 1 {
                            for ox in oxLo..<oxHi { dstRow[ox] += src[ox] }
                        } else {
                            for ox in oxLo..<oxHi { dstRow[ox * s] += src[ox] }
                        }
                    }
                }
            }
        }
    }
}

/// Output columns [lo, hi) whose input column ox * stride + kx - pad lies inside the image.
@inline(__always) func inBoundsColumns(_ kx: Int, _ g: ConvGeometry) -> (Int, Int) {
    (max(0, (g.pad - kx + g.stride - 1) / g.stride), min(g.outW, floorDiv(g.w - 1 + g.pad - kx, g.stride) + 1))
}

/// Floor division (Swift's `/` truncates toward zero).
@inline(__always) func floorDiv(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
