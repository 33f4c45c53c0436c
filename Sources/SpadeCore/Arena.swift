/// Bump allocator for one training step's activations and gradients.
///
/// Every step allocates the same sequence of buffers, so after the first step
/// (which may grow the arena) `reset()` followed by the same allocations
/// touches no malloc at all. Memory is 64-byte aligned for SIMD loads.
public final class Arena {
    private var chunk: UnsafeMutableRawPointer
    private var capacity: Int
    private var used = 0
    /// Chunks that filled up during this step; merged into one at `reset()`.
    private var retired: [(UnsafeMutableRawPointer, Int)] = []
    public private(set) var highWater = 0
    /// Number of system allocations performed (for the "no allocations per step" check).
    public private(set) var systemAllocations = 0

    public init(bytes: Int = 1 << 20) {
        capacity = max(bytes, 4096)
        chunk = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        systemAllocations = 1
    }

    deinit {
        chunk.deallocate()
        for (p, _) in retired { p.deallocate() }
    }

    /// Uninitialised floats, valid until the next `reset()`.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = (max(count, 1) * MemoryLayout<Float>.stride + 63) & ~63
        if used + bytes > capacity {
            retired.append((chunk, capacity))
            let total = retired.reduce(0) { $0 + $1.1 }
            capacity = max(bytes, total)
            chunk = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
            systemAllocations += 1
            used = 0
        }
        let p = (chunk + used).bindMemory(to: Float.self, capacity: count)
        used += bytes
        highWater = max(highWater, used + retired.reduce(0) { $0 + $1.1 })
        return p
    }

    /// Uninitialised doubles (per-channel statistics), valid until the next `reset()`.
    public func doubles(_ count: Int) -> UnsafeMutableBufferPointer<Double> {
        let raw = UnsafeMutableRawPointer(floats(2 * count))
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Double.self, capacity: count), count: count)
    }

    /// Zero-filled floats (gradient buffers are accumulated into with `+=`).
    public func zeros(_ count: Int) -> UnsafeMutablePointer<Float> {
        let p = floats(count)
        p.update(repeating: 0, count: count)
        return p
    }

    public func tensor(_ n: Int, _ c: Int, _ h: Int, _ w: Int) -> Tensor { Tensor(floats(n * c * h * w), n, c, h, w) }
    public func zeroTensor(_ n: Int, _ c: Int, _ h: Int, _ w: Int) -> Tensor { Tensor(zeros(n * c * h * w), n, c, h, w) }
    public func zeroTensor(like t: Tensor) -> Tensor { zeroTensor(t.n, t.c, t.h, t.w) }

    /// Frees everything handed out; if the step overflowed into several chunks,
    /// replaces them by one chunk large enough for the whole step.
    public func reset() {
        if !retired.isEmpty {
            let total = retired.reduce(capacity) { $0 + $1.1 }
            for (p, _) in retired { p.deallocate() }
            retired.removeAll(keepingCapacity: true)
            chunk.deallocate()
            capacity = total
            chunk = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
            systemAllocations += 1
        }
        used = 0
    }
}

/// Scratch memory shared by all layers (im2col columns, GEMM staging): one
/// buffer per slot, grown on demand, never shrunk. Layers run one at a time,
/// so one workspace serves the whole network (Darknet/Caffe style).
public final class Workspace {
    private var slots: [(UnsafeMutablePointer<Float>, Int)] = []
    public private(set) var systemAllocations = 0
    /// Upper bound for one im2col buffer; convolutions split the batch to fit.
    public let columnBudget: Int
    /// How 3x3 stride-1 convolutions are computed (tests force each path).
    public let convAlgorithm: ConvAlgorithm

    public init(columnBudgetFloats: Int = 16 << 20, convAlgorithm: ConvAlgorithm = .automatic) {
        columnBudget = columnBudgetFloats
        self.convAlgorithm = convAlgorithm
    }

    deinit { for (p, _) in slots { p.deallocate() } }

    public func buffer(_ slot: Int, count: Int) -> UnsafeMutablePointer<Float> {
        while slots.count <= slot { slots.append((UnsafeMutablePointer<Float>.allocate(capacity: 1), 1)) }
        if slots[slot].1 < count {
            slots[slot].0.deallocate()
            slots[slot] = (UnsafeMutablePointer<Float>.allocate(capacity: count), count)
            systemAllocations += 1
        }
        return slots[slot].0
    }

    public var bytes: Int { slots.reduce(0) { $0 + $1.1 * 4 } }
}
