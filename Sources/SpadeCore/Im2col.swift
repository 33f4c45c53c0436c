import CKernels

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
/// which matches the flattened weight [Cout, Cin, k, k]. (The loops are C: on the small
/// maps of a generator's first blocks, per-row copy calls cost more than the copies.)
public func im2col(_ x: UnsafePointer<Float>, samples: Int, _ g: ConvGeometry, col: UnsafeMutablePointer<Float>) {
    spade_im2col(x, samples, g.cin, g.h, g.w, g.kernel, g.stride, g.pad, col)
}

/// The adjoint of `im2col`: adds every column entry back into its input pixel.
public func col2imAdd(_ col: UnsafePointer<Float>, samples: Int, _ g: ConvGeometry, dx: UnsafeMutablePointer<Float>) {
    spade_col2im_add(col, samples, g.cin, g.h, g.w, g.kernel, g.stride, g.pad, dx)
}
