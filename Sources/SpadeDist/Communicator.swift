// The communication layer's protocol. The trainer holds one Communicator;
// the math modules (SpadeCore, SpadeNN) never see it or MPI.
//
// Every collective must be called by all ranks of the communicator, in the
// same order. Every all-reduce result is bitwise identical on all ranks
// (see README.md "Bitwise determinism").

import Foundation

/// One rank's view of a group of processes that hold model replicas.
public protocol Communicator: AnyObject {
    /// This process's index in the world, 0..<size.
    var rank: Int { get }
    /// Number of processes in the world.
    var size: Int { get }
    /// Index among the ranks on this node (shared-memory domain).
    var localRank: Int { get }
    /// Number of ranks on this node.
    var localSize: Int { get }

    /// Blocks until every rank has entered the barrier.
    func barrier()
    /// Copies `root`'s bytes into every other rank's `buf` (same byte count on all ranks).
    func broadcast(_ buf: UnsafeMutableRawBufferPointer, root: Int)

    /// In-place blocking sum over ranks.
    func allReduceSum(_ buf: UnsafeMutableBufferPointer<Float>)
    /// In-place blocking sum over ranks.
    func allReduceSum(_ buf: UnsafeMutableBufferPointer<Double>)
    /// In-place blocking element-wise maximum over ranks (flags, hashes).
    func allReduceMax(_ buf: UnsafeMutableBufferPointer<Int64>)
    /// In-place blocking element-wise minimum over ranks.
    func allReduceMin(_ buf: UnsafeMutableBufferPointer<Int64>)
    /// In-place blocking element-wise maximum over ranks.
    func allReduceMax(_ buf: UnsafeMutableBufferPointer<Double>)
    /// In-place blocking element-wise minimum over ranks.
    func allReduceMin(_ buf: UnsafeMutableBufferPointer<Double>)

    /// Gathers `send.count` bytes from every rank into `recv` (size * send.count bytes, rank order).
    func allGather(_ send: UnsafeRawBufferPointer, into recv: UnsafeMutableRawBufferPointer)
    /// Gathers one string per rank (lengths may differ), in rank order.
    func allGatherStrings(_ s: String) -> [String]

    /// Starts an in-place non-blocking sum; `buf` must stay valid and untouched until it completes.
    func startAllReduceSum(_ buf: UnsafeMutableBufferPointer<Float>) -> PendingReduction

    /// A new communicator over the same ranks whose traffic cannot match this one's
    /// (MPI_Comm_dup). Collective: all ranks must call it in the same order.
    func duplicate() -> Communicator

    /// Prints "rank R: message" once to stderr and ends the whole job with `code`.
    func abort(message: String, code: Int32) -> Never

    /// Orderly shutdown (MPI_Finalize). Collective; call once, at the very end.
    func finalize()
}

/// A started non-blocking reduction.
public protocol PendingReduction: AnyObject {
    /// Progresses communication (OpenMPI has no progress thread) and reports completion.
    func test() -> Bool
    /// Blocks until the reduction is complete.
    func wait()
}

// MARK: - Typed conveniences

extension Communicator {
    /// Broadcasts a Float buffer from `root`.
    public func broadcast(_ buf: UnsafeMutableBufferPointer<Float>, root: Int) {
        broadcast(UnsafeMutableRawBufferPointer(buf), root: root)
    }
    /// Broadcasts a Double buffer from `root`.
    public func broadcast(_ buf: UnsafeMutableBufferPointer<Double>, root: Int) {
        broadcast(UnsafeMutableRawBufferPointer(buf), root: root)
    }
    /// Broadcasts an Int64 buffer from `root`.
    public func broadcast(_ buf: UnsafeMutableBufferPointer<Int64>, root: Int) {
        broadcast(UnsafeMutableRawBufferPointer(buf), root: root)
    }
    /// Returns `root`'s value of an array (same count on all ranks).
    public func broadcast<T: BitwiseCopyable>(_ values: [T], root: Int) -> [T] {
        var v = values
        v.withUnsafeMutableBytes { broadcast($0, root: root) }
        return v
    }

    /// Element-wise maximum of a small Int64 array over ranks.
    public func allReduceMax(_ values: [Int64]) -> [Int64] {
        var v = values; v.withUnsafeMutableBufferPointer { allReduceMax($0) }; return v
    }
    /// Element-wise minimum of a small Int64 array over ranks.
    public func allReduceMin(_ values: [Int64]) -> [Int64] {
        var v = values; v.withUnsafeMutableBufferPointer { allReduceMin($0) }; return v
    }
    /// Element-wise maximum of a small Double array over ranks.
    public func allReduceMax(_ values: [Double]) -> [Double] {
        var v = values; v.withUnsafeMutableBufferPointer { allReduceMax($0) }; return v
    }
    /// Element-wise minimum of a small Double array over ranks.
    public func allReduceMin(_ values: [Double]) -> [Double] {
        var v = values; v.withUnsafeMutableBufferPointer { allReduceMin($0) }; return v
    }

    /// Sum over ranks computed in a fixed order on every rank: all values are
    /// gathered (one MPI_Allgather), then each rank adds them in rank order
    /// ((x0 + x1) + x2) + ... . Identical on all ranks by construction and
    /// independent of MPI's algorithm choice; meant for small arrays such as
    /// batch-norm statistics (costs size * count Doubles of traffic and memory).
    public func deterministicAllReduceSum(_ buf: UnsafeMutableBufferPointer<Double>) {
        let n = buf.count, p = size
        if p == 1 || n == 0 { return }
        let all = UnsafeMutableBufferPointer<Double>.allocate(capacity: n * p)
        defer { all.deallocate() }
        allGather(UnsafeRawBufferPointer(buf), into: UnsafeMutableRawBufferPointer(all))
        for i in 0..<n {
            var s = all[i]
            for r in 1..<p { s += all[r * n + i] }
            buf[i] = s
        }
    }

    /// True on every rank if the flag is set on any rank (one reduction).
    public func anyRank(_ flag: Bool) -> Bool {
        allReduceMax([flag ? 1 : 0])[0] != 0
    }
}

/// Adapter for synchronized batch norm: SpadeNN's `StatisticsReducer` protocol
/// has exactly this method, so the trainer adds
/// `extension ReplicaStatisticsReducer: StatisticsReducer {}`.
/// One collective per call; bitwise identical on all ranks.
public final class ReplicaStatisticsReducer {
    public let communicator: Communicator
    /// Number of collectives issued (tests check "one per BN layer per direction").
    public private(set) var calls = 0
    public init(_ communicator: Communicator) { self.communicator = communicator }
    /// Sums per-channel statistics over all replicas, in place.
    public func sumAcrossReplicas(_ values: UnsafeMutableBufferPointer<Double>) {
        calls += 1
        communicator.deterministicAllReduceSum(values)
    }
    /// Every replica's values, rank-major (`result[r * count + i]`), in one collective:
    /// for merging per-rank (count, mean, M2) triples with Chan's formula, so that
    /// forward needs one collective instead of two (sum, then sum of squared deviations).
    public func gatherAcrossReplicas(_ values: UnsafeBufferPointer<Double>) -> [Double] {
        calls += 1
        var all = [Double](repeating: 0, count: values.count * communicator.size)
        all.withUnsafeMutableBytes { communicator.allGather(UnsafeRawBufferPointer(values), into: $0) }
        return all
    }
}
