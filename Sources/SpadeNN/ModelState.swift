import SpadeCore

/// Handle of a trainable parameter inside a `ModelState`.
public struct ParamRef: Hashable, Sendable { public let index: Int }
/// Handle of a float buffer (running statistics, spectral-norm vectors).
public struct BufferRef: Hashable, Sendable { public let index: Int }
/// Handle of an integer counter (`num_batches_tracked`).
public struct CounterRef: Hashable, Sendable { public let index: Int }

/// All parameters, gradients and buffers of one network, each kind in ONE
/// allocation cut into named views (NVlabs state_dict keys, without `netG.`).
///
/// Layers register their tensors while the network is built; `finalize()`
/// then allocates. Views are offsets, so the flat buffers can be reduced,
/// broadcast or checkpointed as a whole.
public final class ModelState {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public private(set) var params: [Entry] = []
    public private(set) var buffers: [Entry] = []
    public private(set) var counterNames: [String] = []
    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0

    public private(set) var values: UnsafeMutablePointer<Float>
    public private(set) var grads: UnsafeMutablePointer<Float>
    public private(set) var bufferValues: UnsafeMutablePointer<Float>
    public var counters: [Int64] = []
    private var bufferInitial: [Float] = []
    public private(set) var isFinalized = false
    private var ownsGradients = true
    private var ownsValues = true

    public init() {
        values = .allocate(capacity: 1); grads = .allocate(capacity: 1); bufferValues = .allocate(capacity: 1)
    }

    deinit {
        bufferValues.deallocate()
        if ownsValues { values.deallocate() }
        if ownsGradients { grads.deallocate() }
    }

    /// Moves the parameters into caller-owned memory of `parameterCount` floats (node-shared
    /// memory: one copy for all ranks of a node), copying the current values unless another
    /// process already did; it must outlive every use of this state.
    public func adoptValueStorage(_ storage: UnsafeMutablePointer<Float>, copyingCurrentValues: Bool) {
        precondition(isFinalized, "adopt value storage after finalize()")
        if copyingCurrentValues { storage.update(from: values, count: parameterCount) }
        if ownsValues { values.deallocate() }
        values = storage
        ownsValues = false
    }

    /// Moves the gradients into caller-owned memory of `parameterCount` floats (the trainer's
    /// node-shared memory, which the other ranks read); it must outlive every use of this state.
    public func adoptGradientStorage(_ storage: UnsafeMutablePointer<Float>) {
        precondition(isFinalized, "adopt gradient storage after finalize()")
        storage.update(from: grads, count: parameterCount)
        if ownsGradients { grads.deallocate() }
        grads = storage
        ownsGradients = false
    }

    public func addParameter(_ name: String, _ shape: [Int]) -> ParamRef {
        precondition(!isFinalized, "register before finalize()")
        params.append(Entry(name: name, shape: shape, offset: parameterCount))
        parameterCount += shape.reduce(1, *)
        return ParamRef(index: params.count - 1)
    }

    public func addBuffer(_ name: String, _ shape: [Int], initial: Float) -> BufferRef {
        precondition(!isFinalized, "register before finalize()")
        buffers.append(Entry(name: name, shape: shape, offset: bufferCount))
        bufferCount += shape.reduce(1, *)
        bufferInitial += [Float](repeating: initial, count: shape.reduce(1, *))
        return BufferRef(index: buffers.count - 1)
    }

    public func addCounter(_ name: String) -> CounterRef {
        precondition(!isFinalized, "register before finalize()")
        counterNames.append(name)
        counters.append(0)
        return CounterRef(index: counterNames.count - 1)
    }

    /// Allocates the flat buffers: parameters and gradients zeroed, buffers at their initial values.
    public func finalize() {
        precondition(!isFinalized)
        values.deallocate(); grads.deallocate(); bufferValues.deallocate()
        values = .allocate(capacity: max(parameterCount, 1))
        values.initialize(repeating: 0, count: max(parameterCount, 1))
        grads = .allocate(capacity: max(parameterCount, 1))
        grads.initialize(repeating: 0, count: max(parameterCount, 1))
        bufferValues = .allocate(capacity: max(bufferCount, 1))
        bufferValues.initialize(repeating: 0, count: max(bufferCount, 1))
        bufferInitial.withUnsafeBufferPointer { bufferValues.update(from: $0.baseAddress!, count: bufferCount) }
        bufferInitial = []
        isFinalized = true
    }

    @inline(__always) public func value(_ p: ParamRef) -> UnsafeMutablePointer<Float> { values + params[p.index].offset }
    @inline(__always) public func grad(_ p: ParamRef) -> UnsafeMutablePointer<Float> { grads + params[p.index].offset }
    @inline(__always) public func buffer(_ b: BufferRef) -> UnsafeMutablePointer<Float> { bufferValues + buffers[b.index].offset }

    // A step's gradients without a zeroing pass over all of them: every parameter's
    // first gradient write of the step overwrites, later ones accumulate, and whatever
    // no backward wrote is zeroed at the end.
    private var gradientWritten: [Bool] = []

    /// Starts a step: the next gradient write of every parameter overwrites.
    public func beginGradients() { setGradientsWritten(false) }

    /// Whether `p`'s gradient already holds a contribution (accumulate) or not (overwrite).
    public func hasGradient(_ p: ParamRef) -> Bool {
        p.index < gradientWritten.count ? gradientWritten[p.index] : true
    }

    public func markGradientWritten(_ p: ParamRef) {
        if p.index < gradientWritten.count { gradientWritten[p.index] = true }
    }

    /// Ends a step's backward: zeroes the gradients of parameters no backward wrote.
    public func finishGradients() {
        for (i, written) in gradientWritten.enumerated() where !written {
            (grads + params[i].offset).update(repeating: 0, count: params[i].count)
        }
        setGradientsWritten(true)
    }

    /// All flags at once, in place after the first step (no allocation per step).
    private func setGradientsWritten(_ value: Bool) {
        if gradientWritten.count != params.count { gradientWritten = [Bool](repeating: value, count: params.count) }
        for i in gradientWritten.indices { gradientWritten[i] = value }
    }

    public var valueBuffer: UnsafeMutableBufferPointer<Float> { .init(start: values, count: parameterCount) }
    public var gradientBuffer: UnsafeMutableBufferPointer<Float> { .init(start: grads, count: parameterCount) }
    public var floatBuffers: UnsafeMutableBufferPointer<Float> { .init(start: bufferValues, count: bufferCount) }

    /// Every state_dict key this network has (parameters, buffers, counters).
    public var stateKeys: [String] { params.map(\.name) + buffers.map(\.name) + counterNames }

    /// Float tensor by state_dict key (parameter or buffer), as a mutable view.
    public func floatTensor(named name: String) -> (entry: Entry, pointer: UnsafeMutablePointer<Float>)? {
        if let i = params.firstIndex(where: { $0.name == name }) { return (params[i], values + params[i].offset) }
        if let i = buffers.firstIndex(where: { $0.name == name }) { return (buffers[i], bufferValues + buffers[i].offset) }
        return nil
    }

    public func parameter(named name: String) -> ParamRef? {
        params.firstIndex(where: { $0.name == name }).map(ParamRef.init)
    }
}

extension ModelState {
    /// Value of a counter by state_dict key.
    public func counter(named name: String) -> Int64? {
        counterNames.firstIndex(of: name).map { counters[$0] }
    }

    public func setCounter(named name: String, _ value: Int64) -> Bool {
        guard let i = counterNames.firstIndex(of: name) else { return false }
        counters[i] = value
        return true
    }

    /// Copies `values` into the parameter or buffer named `name`; false if there is none.
    /// A count mismatch is a precondition failure (callers validate shapes first).
    @discardableResult
    public func assign(_ name: String, _ values: [Float]) -> Bool {
        guard let (entry, ptr) = floatTensor(named: name) else { return false }
        precondition(values.count == entry.count, "\(name): \(values.count) values for shape \(entry.shape)")
        values.withUnsafeBufferPointer { ptr.update(from: $0.baseAddress!, count: entry.count) }
        return true
    }

    public func floats(named name: String) -> [Float]? {
        guard let (entry, ptr) = floatTensor(named: name) else { return nil }
        return Array(UnsafeBufferPointer(start: ptr, count: entry.count))
    }

    public func gradient(named name: String) -> [Float]? {
        guard let p = parameter(named: name) else { return nil }
        return Array(UnsafeBufferPointer(start: grad(p), count: params[p.index].count))
    }
}
