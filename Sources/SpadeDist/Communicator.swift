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
    /// Starts a non-blocking `allGather`; both buffers must stay valid and untouched until it completes.
    func startAllGather(_ send: UnsafeRawBufferPointer, into recv: UnsafeMutableRawBufferPointer) -> PendingReduction

    /// Starts a non-blocking exchange with every rank (MPI_Ialltoallv, bytes): `sendCounts[r]`
    /// bytes at `send + sendOffsets[r]` go to rank r, and rank r's bytes for this rank arrive at
    /// `recv + recvOffsets[r]` (`recvCounts[r]` of them). Buffers stay valid and untouched until
    /// it completes.
    func startAllToAll(send: UnsafeRawPointer, sendCounts: [Int], sendOffsets: [Int],
                       recv: UnsafeMutableRawPointer, recvCounts: [Int], recvOffsets: [Int]) -> PendingReduction
    /// Starts a non-blocking in-place all-gather (MPI_Iallgatherv with MPI_IN_PLACE, bytes): rank
    /// r's `counts[r]` bytes at `buffer + offsets[r]` land at the same place in every rank's buffer.
    func startAllGatherInPlace(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int]) -> PendingReduction

    /// Collective: `bytes` of memory every rank can read and write directly (one segment per
    /// rank, sizes may differ), or nil on every rank when the ranks do not all share one node.
    /// Lives until `finalize()`.
    func allocateNodeShared(bytes: Int) -> NodeSharedMemory?

    /// Collective: the ranks of this node, and this local rank's counterparts on every node
    /// (one rank per node, in the order of the nodes' first ranks, so the node of rank 0 comes
    /// first), for hierarchical reductions; nil on every rank unless the world spans several
    /// nodes with the same number of ranks on each.
    func splitByNode() -> (node: Communicator, crossNode: Communicator)?

    /// A new communicator over the same ranks whose traffic cannot match this one's
    /// (MPI_Comm_dup). Collective: all ranks must call it in the same order.
    func duplicate() -> Communicator

    /// Collective: starts the stall watchdog (StallWatchdog.swift), shared by this communicator
    /// and its duplicates: from now on every wait on other ranks ends the job, naming the
    /// culprit, once a rank has been silent for `timeoutSeconds`. Nothing to do for one process.
    func startStallWatchdog(timeoutSeconds: Double)
    /// This rank entered `phase` of `step` (what the stall watchdog reports).
    func reportProgress(_ phase: RankPhase, step: Int)
    /// Called over and over by a wait on other ranks that happens outside MPI (node-shared
    /// flags), since `start` (monotonic seconds): keeps the stall watchdog informed.
    func stillWaiting(for what: @autoclosure () -> String, since start: Double)

    /// Prints "rank R: message" once to stderr and ends the whole job with `code`.
    func abort(message: String, code: Int32) -> Never

    /// Orderly shutdown (MPI_Finalize). Collective; call once, at the very end.
    func finalize()
}

/// Node-shared memory from `Communicator.allocateNodeShared` (an MPI shared-memory window).
public protocol NodeSharedMemory: AnyObject {
    /// Start of `rank`'s segment (64-byte aligned).
    func segment(of rank: Int) -> UnsafeMutableRawPointer
    /// Memory barrier for the window (MPI_Win_sync): this rank's earlier stores become
    /// visible to the others, their stores made visible before become visible here.
    func synchronize()
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
    /// gathered (one all-gather), then each rank adds them in rank order
    /// ((x0 + x1) + x2) + ... . Identical on all ranks by construction and
    /// independent of MPI's algorithm choice; meant for small arrays such as
    /// batch-norm statistics (costs size * count Doubles of traffic and memory).
    public func deterministicAllReduceSum(_ buf: UnsafeMutableBufferPointer<Double>) {
        ReplicaSum(buf, self).wait()
    }

    /// True on every rank if the flag is set on any rank (one reduction).
    public func anyRank(_ flag: Bool) -> Bool {
        allReduceMax([flag ? 1 : 0])[0] != 0
    }
}

/// Synchronized batch norm's reduction: a non-blocking form of
/// `deterministicAllReduceSum` (one MPI_Iallgather, then every rank adds the
/// replicas' values in rank order), bitwise identical on all ranks.
/// SpadeTrain adapts it to SpadeNN's `StatisticsReducer`.
public final class ReplicaStatisticsReducer {
    public let communicator: Communicator
    /// Number of collectives issued (tests check "one per BN layer per direction").
    public private(set) var calls = 0
    public init(_ communicator: Communicator) { self.communicator = communicator }

    /// Starts summing `values` over all replicas; `values` holds the sum after `wait()`.
    public func startSum(_ values: UnsafeMutableBufferPointer<Double>) -> ReplicaSum {
        calls += 1
        return ReplicaSum(values, communicator)
    }
}

/// A replica sum in flight (see `ReplicaStatisticsReducer`).
public final class ReplicaSum {
    private let values: UnsafeMutableBufferPointer<Double>
    private let gathered: UnsafeMutableBufferPointer<Double>
    private let ranks: Int
    private var pending: PendingReduction?

    init(_ values: UnsafeMutableBufferPointer<Double>, _ comm: Communicator) {
        self.values = values
        ranks = comm.size
        gathered = .allocate(capacity: max(values.count * ranks, 1))
        if ranks > 1 && values.count > 0 {
            pending = comm.startAllGather(UnsafeRawBufferPointer(values), into: UnsafeMutableRawBufferPointer(gathered))
        }
    }

    deinit {
        // The gather must not write into freed memory.
        precondition(pending == nil, "a batch-norm reduction was dropped before wait()")
        gathered.deallocate()
    }

    /// Completes the gather and adds the replicas' values in rank order.
    public func wait() {
        guard let p = pending else { return }
        p.wait()
        pending = nil
        let n = values.count
        for i in 0..<n {
            var s = gathered[i]
            for r in 1..<ranks { s += gathered[r * n + i] }
            values[i] = s
        }
    }
}
