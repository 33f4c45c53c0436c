/// A view of an NCHW Float32 tensor over memory owned elsewhere (an arena,
/// a parameter store or a caller's array). Copying the view copies no data.
public struct Tensor {
    public let data: UnsafeMutablePointer<Float>
    public let n: Int, c: Int, h: Int, w: Int

    public init(_ data: UnsafeMutablePointer<Float>, _ n: Int, _ c: Int, _ h: Int, _ w: Int) {
        self.data = data
        self.n = n; self.c = c; self.h = h; self.w = w
    }

    public var count: Int { n * c * h * w }
    /// Elements of one (sample, channel) plane.
    public var plane: Int { h * w }
    /// Elements of one sample.
    public var sampleSize: Int { c * h * w }
    public var shape: [Int] { [n, c, h, w] }

    /// Pointer to sample `i`.
    @inline(__always) public func sample(_ i: Int) -> UnsafeMutablePointer<Float> { data + i * sampleSize }

    /// The first `k` samples (contiguous in NCHW).
    public func prefix(samples k: Int) -> Tensor {
        precondition(k <= n)
        return Tensor(data, k, c, h, w)
    }

    /// Samples [start, start+k).
    public func samples(_ start: Int, _ k: Int) -> Tensor {
        precondition(start + k <= n)
        return Tensor(data + start * sampleSize, k, c, h, w)
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    public func toArray() -> [Float] { Array(buffer) }

    public func copy(from values: [Float]) {
        precondition(values.count == count, "copy of \(values.count) values into \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
    }

    public func fill(_ v: Float) { data.update(repeating: v, count: count) }

}
