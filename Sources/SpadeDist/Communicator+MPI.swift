// Communicator over OpenMPI's C API.
//
// Thread level: MPI_THREAD_FUNNELED. The process has several threads
// (OpenBLAS workers, the data loader's decoder thread), so MPI_THREAD_SINGLE
// would be a lie, but only the thread that called MPI_Init_thread (the
// trainer's main thread) ever calls MPI. FUNNELED says exactly that and lets
// OpenMPI skip the locking MPI_THREAD_MULTIPLE costs on every call; overlap
// comes from non-blocking collectives polled by the main thread, not from a
// communication thread. Every call checks it runs on the initializing thread.

import CMPI
import Foundation

/// The world of an MPI job (MPI_COMM_WORLD), or a duplicate of it.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let localRank: Int
    public let localSize: Int
    /// The thread level MPI granted (>= FUNNELED).
    public let providedThreadLevel: Int32
    let comm: MPI_Comm
    private let owner: pthread_t
    /// The stall watchdog, shared with this communicator's duplicates (nil until started).
    private let watchdog: WatchdogSlot

    /// True if this process was started by a launcher that set up an MPI job
    /// (mpirun/mpiexec, or srun with PMI/PMIx); otherwise MPI_Init would start a singleton.
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// Initializes MPI (MPI_Init_thread with MPI_THREAD_FUNNELED) unless it already is,
    /// and wraps MPI_COMM_WORLD. Works as an MPI singleton when not launched by mpirun.
    public convenience init() throws {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        var provided: Int32 = 0
        if initialized == 0 {
            Self.setDefaultMCAParameters()
            let rc = MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided)
            if rc != cmpi_success() { throw DistributedError.mpi("MPI_Init_thread failed (\(mpiErrorString(rc)))") }
        } else {
            MPI_Query_thread(&provided)
        }
        if provided < cmpi_thread_funneled() {
            throw DistributedError.mpi("MPI provides thread level \(provided), need MPI_THREAD_FUNNELED")
        }
        self.init(comm: cmpi_comm_world(), providedThreadLevel: provided, watchdog: WatchdogSlot())
    }

    /// MCA defaults this layer relies on, set in the environment before MPI_Init
    /// unless the user set them (--mca / OMPI_MCA_*; README.md "MCA parameters").
    /// - coll_libnbc_iallreduce_algorithm 3 (Rabenseifner: reduce-scatter by
    ///   recursive halving + allgather; ring when the buffer is shorter than the
    ///   power of two below the world size). libnbc's own choice for an in-place
    ///   Iallreduce is the binomial reduce + broadcast, 3-5x slower for MB-sized
    ///   buckets. All three compute each result element on exactly one rank and
    ///   copy it to the others, so results are bitwise identical on all ranks.
    static func setDefaultMCAParameters() {
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0)  // 0: keep the user's value
    }

    private init(comm: MPI_Comm, providedThreadLevel: Int32, watchdog: WatchdogSlot) {
        self.comm = comm
        self.watchdog = watchdog
        self.providedThreadLevel = providedThreadLevel
        self.owner = pthread_self()
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r); size = Int(s)
        // Ranks sharing memory = ranks on this node, under any launcher.
        var local: MPI_Comm? = nil
        MPI_Comm_split_type(comm, cmpi_comm_type_shared(), r, cmpi_info_null(), &local)
        var lr: Int32 = 0, ls: Int32 = 1
        MPI_Comm_rank(local, &lr)
        MPI_Comm_size(local, &ls)
        MPI_Comm_free(&local)
        localRank = Int(lr); localSize = Int(ls)
    }

    @inline(__always) func checkThread(_ function: StaticString = #function) {
        precondition(pthread_equal(pthread_self(), owner) != 0,
                     "MPI called from a thread other than the one that initialized it (\(function)); the thread level is FUNNELED")
    }

    /// Completes a started collective. With the stall watchdog running this polls, so that a
    /// rank that never arrives ends the job instead of hanging it (OpenMPI's MPI_Wait spins too).
    func complete(_ request: inout MPI_Request?, _ what: @autoclosure () -> String) {
        guard let watchdog = watchdog.current else {
            MPI_Wait(&request, cmpi_status_ignore())
            return
        }
        let start = monotonicSeconds()
        var done: Int32 = 0
        var spins = 0
        while true {
            MPI_Test(&request, &done, cmpi_status_ignore())
            if done != 0 { return }
            watchdog.waiting(in: what(), since: start) { abort(message: $0, code: 1) }
            spins += 1
            if spins % 64 == 0 { cmpi_yield() }   // oversubscribed ranks share cores
        }
    }

    public func barrier() {
        checkThread()
        var request: MPI_Request? = cmpi_request_null()
        MPI_Ibarrier(comm, &request)
        complete(&request, "a barrier")
    }

    public func broadcast(_ buf: UnsafeMutableRawBufferPointer, root: Int) {
        checkThread()
        precondition(root >= 0 && root < size)
        var offset = 0
        while offset < buf.count {  // counts are Int32 in MPI: chunk at 1 GiB
            let n = min(buf.count - offset, 1 << 30)
            var request: MPI_Request? = cmpi_request_null()
            MPI_Ibcast(buf.baseAddress! + offset, Int32(n), cmpi_byte(), Int32(root), comm, &request)
            complete(&request, "a broadcast from rank \(root)")
            offset += n
        }
    }

    private func allReduce<T>(_ buf: UnsafeMutableBufferPointer<T>, _ type: MPI_Datatype, _ op: MPI_Op) {
        checkThread()
        var offset = 0
        while offset < buf.count {
            let n = min(buf.count - offset, 1 << 30)
            var request: MPI_Request? = cmpi_request_null()
            MPI_Iallreduce(cmpi_in_place(), buf.baseAddress! + offset, Int32(n), type, op, comm, &request)
            complete(&request, "a small all-reduce")
            offset += n
        }
    }

    public func allReduceSum(_ buf: UnsafeMutableBufferPointer<Float>) { allReduce(buf, cmpi_float(), cmpi_op_sum()) }
    public func allReduceSum(_ buf: UnsafeMutableBufferPointer<Double>) { allReduce(buf, cmpi_double(), cmpi_op_sum()) }
    public func allReduceMax(_ buf: UnsafeMutableBufferPointer<Int64>) { allReduce(buf, cmpi_int64(), cmpi_op_max()) }
    public func allReduceMin(_ buf: UnsafeMutableBufferPointer<Int64>) { allReduce(buf, cmpi_int64(), cmpi_op_min()) }
    public func allReduceMax(_ buf: UnsafeMutableBufferPointer<Double>) { allReduce(buf, cmpi_double(), cmpi_op_max()) }
    public func allReduceMin(_ buf: UnsafeMutableBufferPointer<Double>) { allReduce(buf, cmpi_double(), cmpi_op_min()) }

    public func allGather(_ send: UnsafeRawBufferPointer, into recv: UnsafeMutableRawBufferPointer) {
        checkThread()
        precondition(recv.count == send.count * size, "allGather: receive buffer must hold size * send.count bytes")
        precondition(send.count < Int(Int32.max))
        if send.count == 0 { return }
        startAllGather(send, into: recv).wait()
    }

    public func startAllGather(_ send: UnsafeRawBufferPointer, into recv: UnsafeMutableRawBufferPointer) -> PendingReduction {
        checkThread()
        precondition(recv.count == send.count * size, "startAllGather: receive buffer must hold size * send.count bytes")
        precondition(send.count < Int(Int32.max))
        if send.count == 0 { return CompletedReduction() }
        let pending = MPIPendingReduction(owner: self)
        MPI_Iallgather(send.baseAddress!, Int32(send.count), cmpi_byte(),
                       recv.baseAddress!, Int32(send.count), cmpi_byte(), comm, &pending.request)
        return pending
    }

    public func allGatherStrings(_ s: String) -> [String] {
        checkThread()
        let bytes = Array(s.utf8)
        var lengths = [Int32](repeating: 0, count: size)
        [Int32(bytes.count)].withUnsafeBytes { mine in
            lengths.withUnsafeMutableBytes { allGather(mine, into: $0) }
        }
        var displs = [Int32](repeating: 0, count: size)
        var total = 0
        for r in 0..<size { displs[r] = Int32(total); total += Int(lengths[r]) }
        precondition(total < Int(Int32.max), "allGatherStrings: strings too long")
        var all = [UInt8](repeating: 0, count: max(total, 1))
        let sendBytes = bytes.isEmpty ? [0] : bytes  // a valid address even for ""
        // Every buffer stays pinned until the non-blocking gather has completed.
        sendBytes.withUnsafeBufferPointer { send in
            all.withUnsafeMutableBufferPointer { recv in
                lengths.withUnsafeBufferPointer { counts in
                    displs.withUnsafeBufferPointer { offsets in
                        var request: MPI_Request? = cmpi_request_null()
                        MPI_Iallgatherv(send.baseAddress, Int32(bytes.count), cmpi_byte(), recv.baseAddress, counts.baseAddress,
                                        offsets.baseAddress, cmpi_byte(), comm, &request)
                        complete(&request, "an all-gather of strings")
                    }
                }
            }
        }
        return (0..<size).map { r in
            let start = Int(displs[r])
            return String(decoding: all[start..<start + Int(lengths[r])], as: UTF8.self)
        }
    }

    public func startAllReduceSum(_ buf: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
        checkThread()
        precondition(buf.count <= Int(Int32.max), "startAllReduceSum: \(buf.count) elements exceed MPI's int count")
        let pending = MPIPendingReduction(owner: self)
        if buf.count == 0 { return CompletedReduction() }
        // Algorithm: see setDefaultMCAParameters and README.md "Bitwise determinism".
        MPI_Iallreduce(cmpi_in_place(), buf.baseAddress!, Int32(buf.count), cmpi_float(), cmpi_op_sum(),
                       comm, &pending.request)
        return pending
    }

    public func startAllToAll(send: UnsafeRawPointer, sendCounts: [Int], sendOffsets: [Int],
                              recv: UnsafeMutableRawPointer, recvCounts: [Int], recvOffsets: [Int]) -> PendingReduction {
        checkThread()
        precondition([sendCounts, sendOffsets, recvCounts, recvOffsets].allSatisfy { $0.count == size })
        let pending = MPIPendingReduction(owner: self)
        let arrays = pending.keepAlive([sendCounts, sendOffsets, recvCounts, recvOffsets])
        MPI_Ialltoallv(send, arrays[0], arrays[1], cmpi_byte(), recv, arrays[2], arrays[3], cmpi_byte(),
                       comm, &pending.request)
        return pending
    }

    public func startAllGatherInPlace(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int]) -> PendingReduction {
        checkThread()
        precondition(counts.count == size && offsets.count == size)
        let pending = MPIPendingReduction(owner: self)
        let arrays = pending.keepAlive([counts, offsets])
        MPI_Iallgatherv(cmpi_in_place(), 0, cmpi_byte(), buffer, arrays[0], arrays[1], cmpi_byte(), comm, &pending.request)
        return pending
    }

    public func duplicate() -> Communicator {
        checkThread()
        var dup: MPI_Comm? = nil
        MPI_Comm_dup(comm, &dup)
        return MPICommunicator(comm: dup!, providedThreadLevel: providedThreadLevel, watchdog: watchdog)
    }

    public func splitByNode() -> (node: Communicator, crossNode: Communicator)? {
        checkThread()
        let perNode = allReduceMin([Int64(localSize)])[0], most = allReduceMax([Int64(localSize)])[0]
        guard localSize < size, perNode == most else { return nil }
        var node: MPI_Comm? = nil, cross: MPI_Comm? = nil
        MPI_Comm_split_type(comm, cmpi_comm_type_shared(), Int32(rank), cmpi_info_null(), &node)
        let nodeComm = MPICommunicator(comm: node!, providedThreadLevel: providedThreadLevel, watchdog: watchdog)
        // Nodes ordered by their first rank: every local rank's cross-node communicator lists
        // the nodes alike, with rank 0's node first (where checkpoints are written).
        let firstRank = nodeComm.broadcast([Int64(rank)], root: 0)[0]
        MPI_Comm_split(comm, Int32(localRank), Int32(firstRank), &cross)
        return (nodeComm, MPICommunicator(comm: cross!, providedThreadLevel: providedThreadLevel, watchdog: watchdog))
    }

    public func startStallWatchdog(timeoutSeconds: Double) {
        checkThread()
        guard size > 1, watchdog.current == nil else { return }
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        let hosts = allGatherStrings(String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        watchdog.current = StallWatchdog(world: comm, rank: rank, size: size, hosts: hosts, timeoutSeconds: timeoutSeconds)
    }

    public func reportProgress(_ phase: RankPhase, step: Int) {
        watchdog.current?.report(phase, step: step)
    }

    public func stillWaiting(for what: @autoclosure () -> String, since start: Double) {
        watchdog.current?.waiting(in: what(), since: start) { abort(message: $0, code: 1) }
    }

    public func abort(message: String, code: Int32) -> Never {
        fflush(nil)  // all output streams: keep progress lines printed before the failure
        if !message.isEmpty { printFatalMessageOnce("rank \(rank): \(message)") }
        MPI_Abort(cmpi_comm_world(), code)
        exit(code)  // MPI_Abort does not return; keep the compiler and singletons honest
    }

    public func allocateNodeShared(bytes: Int) -> NodeSharedMemory? {
        checkThread()
        // Shared windows need every rank in one shared-memory domain; the answer is the same on all ranks.
        guard localSize == size else { return nil }
        let aligned = MPI_Aint((max(bytes, 1) + 63) / 64 * 64)
        var base: UnsafeMutableRawPointer? = nil
        var win: MPI_Win? = nil
        let rc = withUnsafeMutablePointer(to: &base) {
            MPI_Win_allocate_shared(aligned, 1, cmpi_info_null(), comm, UnsafeMutableRawPointer($0), &win)
        }
        if rc != cmpi_success() { abort(message: "MPI_Win_allocate_shared of \(aligned) bytes failed: \(mpiErrorString(rc))", code: 1) }
        var segments: [UnsafeMutableRawPointer] = []
        for r in 0..<size {
            var segmentBytes: MPI_Aint = 0, unit: Int32 = 0
            var pointer: UnsafeMutableRawPointer? = nil
            _ = withUnsafeMutablePointer(to: &pointer) {
                MPI_Win_shared_query(win, Int32(r), &segmentBytes, &unit, UnsafeMutableRawPointer($0))
            }
            segments.append(pointer!)
        }
        MPI_Win_lock_all(Int32(cmpi_mode_nocheck()), win)   // passive epoch, for MPI_Win_sync
        openSharedWindows.append(win)
        return MPINodeSharedMemory(window: win, segments: segments)
    }

    public func finalize() {
        checkThread()
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 {
            watchdog.current?.stop()
            watchdog.current = nil
            for i in openSharedWindows.indices {
                MPI_Win_unlock_all(openSharedWindows[i])
                MPI_Win_free(&openSharedWindows[i])
            }
            openSharedWindows = []
            MPI_Finalize()
        }
    }
}

/// Holds the stall watchdog once started; one per world, shared by its duplicates.
final class WatchdogSlot {
    var current: StallWatchdog?
}

/// Windows from `allocateNodeShared`, freed by `finalize()` (MPI_Win_free is collective:
/// a deinit at a different moment on each rank could deadlock).
nonisolated(unsafe) private var openSharedWindows: [MPI_Win?] = []

final class MPINodeSharedMemory: NodeSharedMemory {
    private let window: MPI_Win?
    private let segments: [UnsafeMutableRawPointer]
    init(window: MPI_Win?, segments: [UnsafeMutableRawPointer]) { self.window = window; self.segments = segments }
    func segment(of rank: Int) -> UnsafeMutableRawPointer { segments[rank] }
    func synchronize() { MPI_Win_sync(window) }
}

/// A non-blocking MPI collective in flight.
final class MPIPendingReduction: PendingReduction {
    var request: MPI_Request? = cmpi_request_null()
    private var done = false
    private unowned let owner: MPICommunicator
    /// Count and displacement arrays of a v-collective: MPI reads them until it completes.
    private var arrays: [UnsafeMutablePointer<Int32>] = []
    init(owner: MPICommunicator) { self.owner = owner }

    /// Copies of `values` (as MPI's int) that live as long as this request.
    func keepAlive(_ values: [[Int]]) -> [UnsafeMutablePointer<Int32>] {
        for v in values {
            precondition(v.allSatisfy { $0 >= 0 && $0 <= Int(Int32.max) }, "a count or offset beyond MPI's int")
            let p = UnsafeMutablePointer<Int32>.allocate(capacity: max(v.count, 1))
            for (i, x) in v.enumerated() { p[i] = Int32(x) }
            arrays.append(p)
        }
        return arrays.suffix(values.count).map { $0 }
    }

    func test() -> Bool {
        if done { return true }
        owner.checkThread()
        var flag: Int32 = 0
        MPI_Test(&request, &flag, cmpi_status_ignore())
        done = flag != 0
        return done
    }

    func wait() {
        if done { return }
        owner.checkThread()
        owner.complete(&request, "a non-blocking collective (gradient sums or batch-norm statistics)")
        done = true
    }

    deinit {
        // Dropping an unfinished request would leave MPI writing into freed memory.
        precondition(done || request == cmpi_request_null(), "a non-blocking reduction was dropped before it completed")
        for p in arrays { p.deallocate() }
    }
}

func mpiErrorString(_ code: Int32) -> String {
    var buf = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
    var len: Int32 = 0
    MPI_Error_string(code, &buf, &len)
    return String(decoding: buf.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The world communicator for this process: MPI when launched by mpirun/srun
/// (or when `forceMPI`, e.g. to test singleton MPI), otherwise a single process
/// without MPI (no orted start-up, nothing to clean up).
public func makeWorldCommunicator(forceMPI: Bool = false) throws -> Communicator {
    if forceMPI || MPICommunicator.launchedByMPI { return try MPICommunicator() }
    return SingleProcessCommunicator()
}
