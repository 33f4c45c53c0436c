// Bucketed, overlapped gradient summation across replicas.
//
// Backward finalises parameter gradients layer by layer, last layer first.
// Gradients are grouped into buckets of about `bucketBytes` in that order;
// when the last gradient of a bucket is marked ready, the bucket's
// non-blocking all-reduce starts while backward goes on computing earlier
// layers. OpenMPI has no progress thread, so backward calls `poll()` between
// layers to move the messages along. `finish()` waits for the rest and
// reports how long it waited. The sums stay sums: the optimizer divides by the
// world size in its own pass over the gradients (Adam's `replicas`), which
// saves a read-and-write pass over every gradient per step. Each bucket is
// checked for NaN/Inf as soon as its sum arrives, while it is still in cache.
//
// Buckets start in bucket order on every rank (bucket k+1 waits for bucket
// k), so ranks issue their collectives in the same order even if gradients
// inside a step are marked in a different order. The reducer uses its own
// duplicate communicator, so its traffic never interleaves with the
// batch-norm reductions issued during the same backward.

import CKernels
import Foundation

/// Timings and facts about one step's gradient reduction.
public struct GradientReductionStats: Sendable {
    /// Seconds `finish()` spent waiting for reductions to complete ("comm_wait_s").
    public var commWaitSeconds: Double = 0
    /// Seconds spent inside `poll()` during backward.
    public var pollSeconds: Double = 0
    /// Seconds spent copying to/from staging buffers and checking the sums for NaN/Inf.
    public var postProcessSeconds: Double = 0
    /// Bytes of gradients reduced (per rank).
    public var bytes: Int = 0
    /// Number of buckets.
    public var buckets: Int = 0
    /// Buckets whose reduction had started before `finish()` was called.
    public var bucketsStartedBeforeFinish: Int = 0
    /// Buckets that had completed before `finish()` was called.
    public var bucketsCompletedBeforeFinish: Int = 0
    /// False if any summed gradient is NaN or infinite. Computed on the
    /// reduced values, which are bitwise identical on all ranks, so every rank
    /// reaches the same verdict without another collective.
    public var allFinite: Bool = true
}

/// Sums gradients over all ranks, bucket by bucket, overlapped with backward:
/// `beginStep()`, then backward's `markReady` and `poll()` calls, then `finish()`.
/// Two implementations: `GradientAllReducer` (MPI non-blocking all-reduce, any
/// topology) and `SharedMemoryGradientReducer` (all ranks on one node).
public protocol GradientReducer: AnyObject {
    /// Starts a step: every gradient becomes not-ready. Call before backward.
    func beginStep()
    /// Backward calls this when gradient `index` (position in the constructor's list) is final.
    func markReady(_ index: Int)
    /// Progresses the reduction; cheap, called between layers of backward.
    func poll()
    /// Completes the step: the sums are final and identical on all ranks.
    @discardableResult func finish() -> GradientReductionStats
    /// nil: after `finish()` the sums are in place, in the gradients themselves. Otherwise each
    /// gradient's sum is these stores (same layout) added element by element in order, which
    /// the optimizer does as it reads them; they stay valid until every rank has passed a
    /// barrier after that.
    var summands: [UnsafeMutablePointer<Float>]? { get }
    var bucketCount: Int { get }
    /// One line for the start-up log.
    var layoutDescription: String { get }
}

/// Gradient bucket size unless configured (`bucket_mb`): 4 MiB, large enough for full-speed
/// transfers, small enough that the first bucket starts early in backward.
public let defaultGradientBucketBytes = 4 << 20

/// Greedy bucketing in backward order: a bucket closes once it holds >= `bucketBytes`
/// (the last one holds the rest). Returns index ranges into `counts`.
func planGradientBuckets(counts: [Int], bucketBytes: Int) -> [Range<Int>] {
    var buckets: [Range<Int>] = []
    var start = 0, elements = 0
    for i in counts.indices {
        elements += counts[i]
        if elements * MemoryLayout<Float>.size >= bucketBytes || i == counts.count - 1 {
            buckets.append(start..<(i + 1))
            start = i + 1; elements = 0
        }
    }
    return buckets
}

/// A step's bookkeeping shared by the reducers: which gradients backward has finalised, and
/// how many each bucket still waits for.
struct BucketReadiness {
    let bucketOf: [Int]            // gradient index -> bucket
    private let sizes: [Int]       // gradients per bucket
    private var ready: [Bool]
    private var remaining: [Int]

    init(buckets: [Range<Int>], gradientCount: Int) {
        var bucketOf = Array(repeating: 0, count: gradientCount)
        for (b, range) in buckets.enumerated() { for i in range { bucketOf[i] = b } }
        self.bucketOf = bucketOf
        sizes = buckets.map(\.count)
        ready = Array(repeating: false, count: gradientCount)
        remaining = sizes
    }

    /// A new step: nothing is final.
    mutating func begin() {
        for i in ready.indices { ready[i] = false }
        for b in remaining.indices { remaining[b] = sizes[b] }
    }

    /// Gradient `index` is final; returns its bucket when that completes the bucket.
    mutating func mark(_ index: Int, name: @autoclosure () -> String) -> Int? {
        precondition(!ready[index], "gradient \(name()) marked ready twice in one step")
        ready[index] = true
        let b = bucketOf[index]
        remaining[b] -= 1
        return remaining[b] == 0 ? b : nil
    }

    func isComplete(_ b: Int) -> Bool { remaining[b] == 0 }
}

public final class GradientAllReducer: GradientReducer {
    /// One gradient tensor.
    public struct Gradient {
        public let name: String
        public let pointer: UnsafeMutablePointer<Float>
        public let count: Int
    }

    struct Bucket {
        var gradients: Range<Int>          // indices into `gradients`
        var elements: Int
        var contiguous: UnsafeMutableBufferPointer<Float>?  // reduced in place
        var staging: UnsafeMutableBufferPointer<Float>?     // else copied here
        var pending: PendingReduction?
        var completed = false   // summed, checked and (if staged) copied back
    }

    public let gradients: [Gradient]
    public let bucketBytes: Int
    /// Extra MPI_Test calls per `poll()` while a bucket is in flight (>= 1).
    public var progressCallsPerPoll = 2
    /// Check the summed gradients for NaN/Inf.
    public var checkFinite = true

    private let comm: Communicator
    private var buckets: [Bucket] = []
    private var readiness: BucketReadiness
    private let indexOfName: [String: Int]
    private var nextToStart = 0
    private var firstInFlight = 0
    private var stats = GradientReductionStats()
    private var inStep = false

    /// Gradients given as separate pointers, in the order backward finalises them.
    /// Collective (duplicates the communicator): all ranks construct their reducers
    /// in the same order.
    /// Buckets whose gradients happen to be adjacent in memory are reduced in
    /// place; others go through a staging buffer.
    public init(communicator: Communicator,
                gradients: [(name: String, pointer: UnsafeMutablePointer<Float>, count: Int)],
                bucketBytes: Int = defaultGradientBucketBytes) {
        precondition(bucketBytes > 0)
        self.comm = communicator.size > 1 ? communicator.duplicate() : communicator
        self.gradients = gradients.map { Gradient(name: $0.name, pointer: $0.pointer, count: $0.count) }
        self.bucketBytes = bucketBytes
        var names: [String: Int] = [:]
        for (i, g) in self.gradients.enumerated() {
            precondition(g.count >= 0)
            precondition(names[g.name] == nil, "gradient \(g.name) listed twice")
            names[g.name] = i
        }
        indexOfName = names
        let plan = planGradientBuckets(counts: self.gradients.map(\.count), bucketBytes: bucketBytes)
        readiness = BucketReadiness(buckets: plan, gradientCount: gradients.count)
        for range in plan {
            buckets.append(Bucket(gradients: range, elements: self.gradients[range].reduce(0) { $0 + $1.count }))
        }
        for b in buckets.indices {
            if let range = Self.contiguousRange(self.gradients[buckets[b].gradients]) {
                buckets[b].contiguous = range
            } else {
                buckets[b].staging = .allocate(capacity: buckets[b].elements)
            }
        }
    }

    /// Gradients living in one allocation at `base`, given as (name, offset, count)
    /// in the order backward finalises them (a ModelState's layout). With the
    /// store laid out in forward order, every bucket is a contiguous range and is
    /// reduced in place.
    public convenience init(communicator: Communicator, base: UnsafeMutablePointer<Float>,
                            segments: [(name: String, offset: Int, count: Int)],
                            bucketBytes: Int = defaultGradientBucketBytes) {
        self.init(communicator: communicator,
                  gradients: segments.map { ($0.name, base + $0.offset, $0.count) },
                  bucketBytes: bucketBytes)
    }

    deinit {
        for b in buckets { b.staging?.deallocate() }
    }

    /// If the tensors tile one address range without gaps or overlap, that range.
    static func contiguousRange(_ gs: ArraySlice<Gradient>) -> UnsafeMutableBufferPointer<Float>? {
        let sorted = gs.filter { $0.count > 0 }.sorted { $0.pointer < $1.pointer }
        guard let first = sorted.first else { return nil }
        var end = first.pointer
        for g in sorted {
            if g.pointer != end { return nil }
            end = g.pointer + g.count
        }
        return UnsafeMutableBufferPointer(start: first.pointer, count: end - first.pointer)
    }

    public var bucketCount: Int { buckets.count }
    public var summands: [UnsafeMutablePointer<Float>]? { nil }
    /// Number of buckets that need a staging copy (0 for a contiguous store).
    public var stagedBucketCount: Int { buckets.filter { $0.staging != nil }.count }
    /// One line for the start-up log.
    public var layoutDescription: String {
        let total = gradients.reduce(0) { $0 + $1.count }
        return "\(gradients.count) gradients, \(total * 4 / 1024) KiB in \(buckets.count) buckets of ~\(bucketBytes / 1024) KiB (\(stagedBucketCount) staged)"
    }

    /// Starts a step: every gradient becomes not-ready. Call before backward.
    public func beginStep() {
        precondition(!inStep, "beginStep() called twice without finish()")
        readiness.begin()
        for b in buckets.indices {
            buckets[b].pending = nil
            buckets[b].completed = false
        }
        nextToStart = 0
        firstInFlight = 0
        stats = GradientReductionStats()
        stats.buckets = buckets.count
        inStep = true
    }

    /// Backward calls this when gradient `index` (position in the constructor's list) is final.
    public func markReady(_ index: Int) {
        precondition(inStep, "markReady outside beginStep()/finish()")
        if readiness.mark(index, name: gradients[index].name) == nextToStart { startReadyBuckets() }
    }

    /// Backward calls this when the named gradient is final.
    public func markReady(_ name: String) {
        guard let i = indexOfName[name] else { preconditionFailure("unknown gradient \(name)") }
        markReady(i)
    }

    /// Starts, in bucket order, every bucket whose gradients are all ready.
    private func startReadyBuckets() {
        while nextToStart < buckets.count && readiness.isComplete(nextToStart) {
            start(nextToStart)
            nextToStart += 1
        }
    }

    private func start(_ b: Int) {
        let t0 = monotonicSeconds()
        let buf: UnsafeMutableBufferPointer<Float>
        if let c = buckets[b].contiguous {
            buf = c
        } else {
            buf = buckets[b].staging!
            var o = 0
            for g in gradients[buckets[b].gradients] {
                (buf.baseAddress! + o).update(from: g.pointer, count: g.count)
                o += g.count
            }
        }
        stats.postProcessSeconds += monotonicSeconds() - t0
        buckets[b].pending = comm.size > 1 ? comm.startAllReduceSum(buf) : nil
    }

    /// Progresses in-flight reductions. Cheap; call between layers of backward.
    public func poll() {
        guard inStep, firstInFlight < nextToStart else { return }
        let t0 = monotonicSeconds()
        // MPI_Test drives OpenMPI's whole progress engine, so testing the
        // oldest request moves all of them; retire the completed prefix.
        var calls = 0
        while firstInFlight < nextToStart && calls < progressCallsPerPoll {
            calls += 1
            if buckets[firstInFlight].pending?.test() ?? true {
                complete(firstInFlight)
                firstInFlight += 1
            }
        }
        stats.pollSeconds += monotonicSeconds() - t0
    }

    /// A bucket's sum has arrived: check it and copy staged gradients back.
    private func complete(_ b: Int) {
        let t0 = monotonicSeconds()
        buckets[b].pending = nil
        buckets[b].completed = true
        let buf = buckets[b].contiguous ?? buckets[b].staging!
        if checkFinite, let base = buf.baseAddress, spade_all_finite(base, buf.count) == 0 {
            stats.allFinite = false
        }
        if let staging = buckets[b].staging {
            var o = 0
            for g in gradients[buckets[b].gradients] {
                g.pointer.update(from: staging.baseAddress! + o, count: g.count)
                o += g.count
            }
        }
        stats.bytes += buckets[b].elements * MemoryLayout<Float>.size
        stats.postProcessSeconds += monotonicSeconds() - t0
    }

    /// Waits for every bucket (starting those never marked: a gradient not
    /// marked ready is taken as final now) and returns the step's statistics.
    /// All gradients are then final sums over ranks, identical on all ranks.
    @discardableResult
    public func finish() -> GradientReductionStats {
        precondition(inStep, "finish() without beginStep()")
        stats.bucketsStartedBeforeFinish = nextToStart
        stats.bucketsCompletedBeforeFinish = firstInFlight
        for b in nextToStart..<buckets.count { start(b) }
        nextToStart = buckets.count

        for b in buckets.indices where !buckets[b].completed {
            if let p = buckets[b].pending {
                let t0 = monotonicSeconds()
                p.wait()   // watched by the stall watchdog, if one runs
                stats.commWaitSeconds += monotonicSeconds() - t0
            }
            complete(b)
        }
        firstInFlight = buckets.count
        inStep = false
        return stats
    }
}

/// Seconds on a monotonic clock (CLOCK_MONOTONIC), for every duration the project measures.
@inline(__always) public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
