// spade-dist-commcheck: exercises SpadeDist under mpirun.
//
//   mpirun -np N spade-dist-commcheck <command> [--key value ...]
//
// Commands (each prints "OK <command> ..." on rank 0 and exits 0 on success):
//   allreduce     blocking/non-blocking/deterministic sums: bitwise equal on all ranks, correct
//   buckets       fake backward finalising ~40 gradients, overlapped bucketed reduction vs a
//                 blocking reference; --staged, --shuffle, --unmarked variants; --shared sums
//                 in node-shared memory (SharedMemoryGradientReducer); prints timings
//   broadcast     broadcastParameters + replica drift detection
//   consistency   checkConsistency; --differ makes the last rank's config differ (exit 2)
//   nonfinite     anyRank and finish().allFinite agree on all ranks (--shared: node-shared sums)
//   throw         --rank R throws mid-run while the others block in a collective (exit 1 or --code)
//   crash         --rank R fails a precondition mid-run
//   exit-early    --rank R calls exit(0) mid-run without MPI_Finalize
//   hang          --rank R writes its pid to --pid-file and sleeps (to be SIGKILLed) while the
//                 others block in MPI_Allreduce
//   layout        prints the rank/BLAS thread layout line
//   info          rank, size, local rank/size, thread level (works as an MPI singleton)

import CMPI
import Foundation
import SpadeDist

// MARK: - Arguments

let arguments = Array(CommandLine.arguments.dropFirst())
let command = arguments.first ?? "help"
nonisolated(unsafe) var options: [String: String] = [:]
nonisolated(unsafe) var flags: Set<String> = []
do {
    var i = 1
    while i < arguments.count {
        let a = arguments[i]
        precondition(a.hasPrefix("--"), "unexpected argument \(a)")
        let key = String(a.dropFirst(2))
        if i + 1 < arguments.count && !arguments[i + 1].hasPrefix("--") {
            options[key] = arguments[i + 1]; i += 2
        } else {
            flags.insert(key); i += 1
        }
    }
}
func intOption(_ k: String, _ d: Int) -> Int { options[k].flatMap { Int($0) } ?? d }
func doubleOption(_ k: String, _ d: Double) -> Double { options[k].flatMap { Double($0) } ?? d }

// MARK: - Helpers

/// SplitMix64: per-rank reproducible data.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1) times 2^e with e in [-12, 12]: sums round differently in every order.
    mutating func awkwardFloat() -> Float {
        let u = Float(next() >> 40) / Float(1 << 24) * 2 - 1
        let e = Int(next() % 25) - 12
        return u * Float(sign: .plus, exponent: e, significand: 1)
    }
}

func data(rank: Int, salt: Int, count: Int) -> [Float] {
    var g = SplitMix64(state: UInt64(rank) &* 1_000_003 &+ UInt64(salt) &* 7919 &+ 17)
    return (0..<count).map { _ in g.awkwardFloat() }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

struct Failure: Error, CustomStringConvertible { let description: String }

/// Throws (identically on all ranks) unless `bytes` are bitwise equal on all ranks.
func requireIdentical(_ comm: Communicator, _ what: String, _ bytes: UnsafeRawBufferPointer) throws {
    let h = Int64(bitPattern: contentHash(bytes))
    let m = comm.allReduceMax([h, ~h])
    if m[0] != ~m[1] { throw Failure(description: "\(what): results differ across ranks") }
}

func require(_ ok: Bool, _ message: @autoclosure () -> String) throws {
    if !ok { throw Failure(description: message()) }
}

/// Busy compute for `seconds` (in-cache multiply-adds), standing in for a backward layer.
nonisolated(unsafe) var sink: Float = 0
func compute(seconds: Double) {
    if seconds <= 0 { return }
    var a = [Float](repeating: 1.0001, count: 4096)
    let end = now() + seconds
    repeat {
        for i in a.indices { a[i] = a[i] * 0.99999 + 1e-6 }
    } while now() < end
    sink += a[0]
}

func say(_ comm: Communicator, _ line: String) {
    if comm.rank == 0 { print(line); fflush(nil) }
}

// MARK: - Commands

func allreduce(_ comm: Communicator) throws {
    let p = comm.size
    var nontrivial = 0
    let statistics = ReplicaStatisticsReducer(comm)
    let side = comm.duplicate()   // the gradient reducer's own communicator
    for (salt, n) in [1, 7, 1000, 65_537, 1_048_579].enumerated() {
        let inputs = (0..<p).map { data(rank: $0, salt: salt, count: n) }
        // Exact reference in Double, and a count of elements whose Float sum depends on order.
        let exact = (0..<n).map { i in inputs.reduce(0.0) { $0 + Double($1[i]) } }
        let scale = exact.reduce(0.0) { max($0, abs($1)) }
        if p > 1 {
            for i in 0..<n {
                var fwd: Float = 0, bwd: Float = 0
                for r in 0..<p { fwd += inputs[r][i]; bwd += inputs[p - 1 - r][i] }
                if fwd != bwd { nontrivial += 1 }
            }
        }
        func checkClose(_ got: [Float], _ what: String) throws {
            for i in 0..<n where abs(Double(got[i]) - exact[i]) > 1e-6 * scale {
                throw Failure(description: "\(what) n=\(n): element \(i) is \(got[i]), expected \(exact[i])")
            }
        }
        // Blocking (coll/tuned).
        var blocking = inputs[comm.rank]
        blocking.withUnsafeMutableBufferPointer { comm.allReduceSum($0) }
        try checkClose(blocking, "allReduceSum")
        try blocking.withUnsafeBytes { try requireIdentical(comm, "allReduceSum(Float) n=\(n)", $0) }
        // Non-blocking (coll/libnbc), polled.
        var nb = inputs[comm.rank]
        try nb.withUnsafeMutableBufferPointer { buf in
            let pending = comm.startAllReduceSum(buf)
            var polls = 0
            while !pending.test() { polls += 1; try require(polls < 100_000_000, "Iallreduce never completed") }
        }
        try checkClose(nb, "startAllReduceSum")
        try nb.withUnsafeBytes { try requireIdentical(comm, "startAllReduceSum n=\(n)", $0) }
        // Double, blocking and deterministic.
        var d = inputs[comm.rank].map { Double($0) * 1.000_000_1 }
        var dd = d
        d.withUnsafeMutableBufferPointer { comm.allReduceSum($0) }
        try d.withUnsafeBytes { try requireIdentical(comm, "allReduceSum(Double) n=\(n)", $0) }
        dd.withUnsafeMutableBufferPointer { comm.deterministicAllReduceSum($0) }
        try dd.withUnsafeBytes { try requireIdentical(comm, "deterministicAllReduceSum n=\(n)", $0) }
        // The deterministic sum is exactly the rank-order sum every rank can compute itself.
        for i in 0..<min(n, 4096) {
            var s = Double(inputs[0][i]) * 1.000_000_1
            for r in 1..<max(p, 1) where r < p { s += Double(inputs[r][i]) * 1.000_000_1 }
            try require(s == dd[i], "deterministicAllReduceSum n=\(n): element \(i) is not the rank-order sum")
        }
        // Batch norm's non-blocking form, with a gradient reduction on another communicator started
        // and finished while it is in flight (as during backward): the same rank-order sum.
        var overlapped = inputs[comm.rank].map { Double($0) * 1.000_000_1 }
        try overlapped.withUnsafeMutableBufferPointer { buf in
            let sum = statistics.startSum(buf)
            var other = inputs[comm.rank]
            try other.withUnsafeMutableBufferPointer { o in
                let pending = side.startAllReduceSum(o)
                var polls = 0
                while !pending.test() { polls += 1; try require(polls < 100_000_000, "Iallreduce never completed") }
            }
            sum.wait()
        }
        try require(overlapped == dd, "ReplicaStatisticsReducer.startSum n=\(n) differs from deterministicAllReduceSum")
    }
    // Small flag reductions.
    let mx = comm.allReduceMax([Int64(comm.rank), -Int64(comm.rank)])
    let mn = comm.allReduceMin([Double(comm.rank) + 0.5])
    try require(mx == [Int64(p - 1), 0] && mn == [0.5], "max/min reductions wrong: \(mx) \(mn)")
    let strings = comm.allGatherStrings(String(repeating: "x", count: comm.rank) + "é\(comm.rank)")
    try require(strings == (0..<p).map { String(repeating: "x", count: $0) + "é\($0)" }, "allGatherStrings wrong: \(strings)")
    var b = [Double](repeating: Double(comm.rank), count: 3)
    b.withUnsafeMutableBufferPointer { comm.broadcast($0, root: p - 1) }
    try require(b == [Double](repeating: Double(p - 1), count: 3), "broadcast wrong")
    comm.barrier()
    say(comm, "OK allreduce np=\(p): 5 sizes x 5 methods bitwise identical on all ranks (\(nontrivial) elements whose float sum depends on order)")
}

/// ~`count` gradient sizes from 64 floats to ~1M floats, varied, deterministic.
func gradientSizes(count: Int, totalFloats: Int) -> [Int] {
    var g = SplitMix64(state: 42)
    var raw: [Double] = []
    for i in 0..<count {
        // Varied weights with small "biases" interleaved.
        let r = Double(1 + g.next() % 100) / 100
        raw.append(i % 3 == 2 ? 0.002 : r * Double(1 + i % 7))
    }
    let sum = raw.reduce(0, +)
    return raw.map { max(16, Int(Double(totalFloats) * $0 / sum)) }
}

/// A reducer over `segments` of a `total`-float gradient store: MPI's all-reduce over `local`,
/// or with `shared` node-shared memory, whose store (this rank's segment) is returned instead.
func makeReducer(_ comm: Communicator, shared: Bool, total: Int, segments: [(name: String, offset: Int, count: Int)],
                 bucketBytes: Int, local: UnsafeMutablePointer<Float>) throws -> (GradientReducer, UnsafeMutablePointer<Float>) {
    guard shared else {
        return (GradientAllReducer(communicator: comm, base: local, segments: segments, bucketBytes: bucketBytes), local)
    }
    let storeBytes = (4 * total + 63) / 64 * 64
    let flagCount = SharedMemoryGradientReducer.flagCount(gradientCounts: segments.map(\.count), bucketBytes: bucketBytes)
    guard let memory = comm.allocateNodeShared(bytes: storeBytes + 8 * flagCount) else {
        throw Failure(description: "no node-shared memory (ranks on several nodes?)")
    }
    let flags = { (r: Int) in (memory.segment(of: r) + storeBytes).assumingMemoryBound(to: Int64.self) }
    flags(comm.rank).initialize(repeating: 0, count: flagCount)
    comm.barrier()
    let reducer = SharedMemoryGradientReducer(
        rank: comm.rank, memory: memory, gradients: (0..<comm.size).map { memory.segment(of: $0).assumingMemoryBound(to: Float.self) },
        flags: (0..<comm.size).map(flags), segments: segments, bucketBytes: bucketBytes, stillWaiting: { comm.stillWaiting(for: $0, since: $1) })
    return (reducer, memory.segment(of: comm.rank).assumingMemoryBound(to: Float.self))
}

func buckets(_ comm: Communicator) throws {
    let nTensors = intOption("tensors", 40)
    let totalFloats = intOption("total-mb", 8) * (1 << 20) / 4
    let bucketBytes = intOption("bucket-kb", 1024) * 1024
    let backwardSeconds = doubleOption("backward-ms", 80) / 1000
    let steps = intOption("steps", 3)
    let staged = flags.contains("staged")
    let shuffle = flags.contains("shuffle")
    let unmarked = flags.contains("unmarked")   // leave every 5th gradient unmarked: finish() starts them
    let noPoll = flags.contains("no-poll")
    let shared = flags.contains("shared")
    try require(!(shared && staged), "--shared needs one contiguous store (no --staged)")
    let sizes = gradientSizes(count: nTensors, totalFloats: totalFloats)
    let total = sizes.reduce(0, +)
    let names = (0..<nTensors).map { "layer\($0 / 2).\($0 % 2 == 0 ? "weight" : "bias")" }

    // Forward-order layout in one allocation (a ModelState), or separate allocations.
    let store = UnsafeMutablePointer<Float>.allocate(capacity: total)
    defer { store.deallocate() }
    var offsets: [Int] = []
    var o = 0
    for s in sizes { offsets.append(o); o += s }
    var separate: [UnsafeMutablePointer<Float>] = []
    defer { separate.forEach { $0.deallocate() } }
    let backwardOrder = Array((0..<nTensors).reversed())
    let reducer: GradientReducer
    var gradientStore = store
    if staged {
        separate = sizes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0 + 1) }  // +1: never adjacent
        reducer = GradientAllReducer(communicator: comm,
                                     gradients: backwardOrder.map { (names[$0], separate[$0], sizes[$0]) },
                                     bucketBytes: bucketBytes)
    } else {
        (reducer, gradientStore) = try makeReducer(comm, shared: shared, total: total,
                                                   segments: backwardOrder.map { (names[$0], offsets[$0], sizes[$0]) },
                                                   bucketBytes: bucketBytes, local: store)
    }
    func pointer(_ t: Int) -> UnsafeMutablePointer<Float> { staged ? separate[t] : gradientStore + offsets[t] }
    /// Tensor t's sum after finish(): in place, or the summands added in order as Adam adds them.
    func sum(_ t: Int) -> [Float] {
        guard let parts = reducer.summands else { return Array(UnsafeBufferPointer(start: pointer(t), count: sizes[t])) }
        return (0..<sizes[t]).map { i in parts.dropFirst().reduce(parts[0][offsets[t] + i]) { $0 + $1[offsets[t] + i] } }
    }
    say(comm, "buckets: \(reducer.layoutDescription)")

    var waits: [Double] = [], backwards: [Double] = [], blockingTimes: [Double] = [], polls: [Double] = []
    var started = 0, completedEarly = 0
    var rng = SplitMix64(state: 7)
    for step in 0..<steps {
        // This rank's "backward" results, and the blocking reference.
        let local = sizes.indices.map { data(rank: comm.rank, salt: 100 * step + $0, count: sizes[$0]) }
        var order = backwardOrder
        if shuffle {  // finalise out of order inside windows of 6 (same on all ranks is NOT required)
            var g = SplitMix64(state: UInt64(comm.rank * 31 + step))
            for w in stride(from: 0, to: order.count, by: 6) {
                let end = min(w + 6, order.count)
                for i in w..<end { let j = w + Int(g.next() % UInt64(end - w)); order.swapAt(i, j) }
            }
        }
        _ = rng.next()
        comm.barrier()
        let t0 = now()
        reducer.beginStep()
        for (k, t) in order.enumerated() {
            compute(seconds: backwardSeconds / Double(nTensors))
            local[t].withUnsafeBufferPointer { pointer(t).update(from: $0.baseAddress!, count: sizes[t]) }
            if !(unmarked && k % 5 == 0) { reducer.markReady(nTensors - 1 - t) }   // its position in backwardOrder
            if !noPoll { reducer.poll() }
        }
        let t1 = now()
        let stats = reducer.finish()
        let t2 = now()
        backwards.append(t1 - t0); waits.append(stats.commWaitSeconds); polls.append(stats.pollSeconds)
        started += stats.bucketsStartedBeforeFinish; completedEarly += stats.bucketsCompletedBeforeFinish
        _ = t2
        // Blocking reference: all-reduce a copy of the same data (the reducer sums; the optimizer divides).
        var reference = [Float](); reference.reserveCapacity(total)
        for t in sizes.indices { reference += local[t] }
        comm.barrier()
        let tb = now()
        reference.withUnsafeMutableBufferPointer { comm.allReduceSum($0) }
        blockingTimes.append(now() - tb)
        var maxErr: Float = 0, maxRef: Float = 0
        var base = 0
        let sums = sizes.indices.map(sum)
        for t in sizes.indices {
            let p = sums[t]
            for i in 0..<sizes[t] {
                let r = reference[base + i]
                maxErr = max(maxErr, abs(p[i] - r)); maxRef = max(maxRef, abs(r))
            }
            base += sizes[t]
        }
        // Two ranks: a + b whatever the algorithm, so bit for bit the blocking all-reduce.
        let bound: Float = comm.size == 2 ? 0 : 1e-6 * maxRef
        try require(maxErr <= bound, "step \(step): bucketed result differs from blocking reference: \(maxErr) vs max \(maxRef)")
        try require(stats.allFinite, "finite data reported non-finite")
        for t in sizes.indices {
            try sums[t].withUnsafeBytes { try requireIdentical(comm, "gradient \(names[t]) step \(step)", $0) }
        }
    }
    // Skip the first step (warm-up) in the timings when there are several.
    let skip = steps > 1 ? 1 : 0
    func mean(_ a: [Double]) -> Double { let s = a.dropFirst(skip); return s.reduce(0, +) / Double(max(s.count, 1)) }
    // comm_wait: the rank that finishes backward last waits only for communication
    // proper; the others also wait for it (skew). Report both.
    let m = comm.allReduceMax([mean(waits), mean(backwards), mean(blockingTimes), mean(polls)])
    let exposed = comm.allReduceMin([mean(waits)])[0]
    let hidden: Double = m[2] > 0 ? max(0, 1 - exposed / m[2]) : 1
    let mb = Double(total * 4) / 1048576
    let n = reducer.bucketCount * steps
    let head = String(format: "OK buckets%@ np=%d tensors=%d MB=%.1f buckets=%d staged=%d", shared ? " (shared)" : "", comm.size, nTensors, mb,
                      reducer.bucketCount, (reducer as? GradientAllReducer)?.stagedBucketCount ?? 0)
    let times = String(format: "backward %.1f ms, comm_wait %.2f ms (%.1f%% of step; %.2f ms incl. rank skew), poll %.2f ms",
                       m[1] * 1000, exposed * 1000, 100 * exposed / (exposed + m[1]), m[0] * 1000, m[3] * 1000)
    let blocking = String(format: "blocking all-reduce %.1f ms, hidden %.0f%%", m[2] * 1000, hidden * 100)
    say(comm, "\(head): \(times), \(blocking), started early \(started)/\(n), done early \(completedEarly)/\(n)")
}

func broadcastCheck(_ comm: Communicator) throws {
    let sizes = [3, 1000, 17, 250_000]
    var tensors = sizes.enumerated().map { data(rank: comm.rank, salt: $0.offset, count: $0.element) }
    let names = ["netG.b.weight", "netD.a.weight", "netG.a.bias", "netD.z.running_mean"]
    func views() -> [(name: String, buffer: UnsafeMutableRawBufferPointer)] {
        // Arrays are stable while not resized; take raw views for the call.
        (0..<tensors.count).map { i in
            (names[i], tensors[i].withUnsafeMutableBytes { $0 })
        }
    }
    try broadcastParameters(comm, tensors: views())
    for i in tensors.indices {
        try require(tensors[i] == data(rank: 0, salt: i, count: sizes[i]), "\(names[i]) is not rank 0's after broadcast")
    }
    try checkReplicasIdentical(comm, step: 10, tensors: views().map { ($0.name, UnsafeRawBufferPointer($0.buffer)) })
    // One rank's replica drifts by one ulp in one element.
    if comm.rank == comm.size - 1 { tensors[3][1234] = tensors[3][1234].nextUp }
    do {
        try checkReplicasIdentical(comm, step: 20, tensors: views().map { ($0.name, UnsafeRawBufferPointer($0.buffer)) })
        try require(comm.size == 1, "drift not detected")
    } catch let e as DistributedError {
        try require(e.description.hasPrefix("replicas diverged at step 20: 1 of 4 tensors differ") && e.description.contains("netD.z.running_mean"),
                    "unexpected drift message: \(e)")
    }
    // Mismatched tensor lists are refused before any data moves.
    if comm.size > 1 {
        var odd = views()
        if comm.rank == 1 { odd[1] = ("netD.a.weight", UnsafeMutableRawBufferPointer(rebasing: odd[1].buffer[0..<400])) }
        do {
            try broadcastParameters(comm, tensors: odd)
            throw Failure(description: "mismatched parameter lists not detected")
        } catch let e as DistributedError {
            try require(e.description.contains("rank 0 has 'netD.a.weight 4000 bytes', rank 1 has 'netD.a.weight 400 bytes'"), "unexpected message: \(e)")
        }
    }
    say(comm, "OK broadcast np=\(comm.size): rank 0's tensors everywhere; 1-ulp drift detected; mismatched lists refused")
}

func consistency(_ comm: Communicator) throws {
    var config = "name: landcover-128\nngf: 64\nndf: 64\nlabel_nc: 8\nnetG.fc.weight [1024, 8, 3, 3]"
    if flags.contains("differ") && comm.rank == comm.size - 1 && comm.size > 1 {
        config = config.replacingOccurrences(of: "ngf: 64", with: "ngf: 32")
    }
    try checkConsistency(comm, fingerprint: config, what: "config")
    say(comm, "OK consistency np=\(comm.size)")
}

func nonfinite(_ comm: Communicator) throws {
    let r = intOption("rank", comm.size - 1)
    try require(comm.anyRank(comm.rank == r), "flag of rank \(r) not seen")
    try require(!comm.anyRank(false), "flag seen where none set")
    var grads = data(rank: comm.rank, salt: 5, count: 10_000)
    if comm.rank == r { grads[777] = .infinity }
    let ok: Bool = try grads.withUnsafeMutableBufferPointer { buf in
        let (reducer, store) = try makeReducer(comm, shared: flags.contains("shared"), total: buf.count,
                                               segments: [("a", 5000, 5000), ("b", 0, 5000)], bucketBytes: 4096,
                                               local: buf.baseAddress!)
        if store != buf.baseAddress! { store.update(from: buf.baseAddress!, count: buf.count) }
        reducer.beginStep()
        reducer.markReady(0); reducer.poll(); reducer.markReady(1)
        return reducer.finish().allFinite
    }
    try require(!ok, "non-finite gradient on rank \(r) not reported")
    say(comm, "OK nonfinite np=\(comm.size): flag and Inf gradient of rank \(r) seen by all ranks")
}

/// All ranks do blocking all-reduces in a loop; rank R fails after `--after` seconds.
func failMidRun(_ comm: Communicator, _ fail: () throws -> Void) throws {
    let r = intOption("rank", 1)
    let after = doubleOption("after", 0.5)
    var buf = [Float](repeating: 1, count: 1024)
    let start = now()
    var iterations = 0
    while true {
        if comm.rank == r && now() - start > after { try fail() }
        buf.withUnsafeMutableBufferPointer { comm.allReduceSum($0) }
        for i in buf.indices { buf[i] = 1 }
        iterations += 1
        if now() - start > 60 { break }  // never reached when the failure works
    }
    say(comm, "NOT OK: survived 60 s (\(iterations) collectives)")
}

struct UserFacing: ExitCodeError {
    let description: String
    var exitCode: Int32 { 2 }
}

// MARK: - Main

let comm: Communicator
do {
    comm = try makeWorldCommunicator(forceMPI: flags.contains("force-mpi"))
} catch {
    FileHandle.standardError.write(Data("spade-dist-commcheck: \(error)\n".utf8))
    exit(1)
}

runGuarded(comm) {
    switch command {
    case "allreduce": try allreduce(comm)
    case "buckets": try buckets(comm)
    case "broadcast": try broadcastCheck(comm)
    case "consistency": try consistency(comm)
    case "nonfinite": try nonfinite(comm)
    case "throw":
        try failMidRun(comm) {
            if options["code"] == "2" { throw UserFacing(description: "bad file data/labels/0007.png: class id 200 >= label_nc 8") }
            throw Failure(description: "boom: simulated failure on one rank")
        }
    case "exit-early":
        try failMidRun(comm) { exit(0) }  // no MPI_Finalize: a trainer bug, not an error
    case "crash":
        try failMidRun(comm) { preconditionFailure("simulated crash on one rank") }
    case "hang":
        let r = intOption("rank", 1)
        if comm.rank == r {
            if let path = options["pid-file"] {
                try "\(getpid())\n".write(toFile: path + ".tmp", atomically: false, encoding: .utf8)
                rename(path + ".tmp", path)
            }
            while true { sleep(1) }  // to be SIGKILLed; the others block in MPI_Allreduce
        }
        var x = [Double](repeating: 1, count: 8)
        while true { x.withUnsafeMutableBufferPointer { comm.allReduceSum($0) } }
    case "pingpong":
        // Blocking vs non-blocking (waited) all-reduce times per size.
        for kb in [64, 256, 1024, 4096, 16384] {
            var a = [Float](repeating: 1, count: kb * 256)
            let reps = max(3, 4096 / kb)
            var tb = 0.0, tn = 0.0
            for _ in 0..<reps {
                comm.barrier(); var t = now()
                a.withUnsafeMutableBufferPointer { comm.allReduceSum($0) }; tb += now() - t
                comm.barrier(); t = now()
                a.withUnsafeMutableBufferPointer { comm.startAllReduceSum($0).wait() }; tn += now() - t
            }
            say(comm, String(format: "%6d KiB: blocking %.3f ms, non-blocking %.3f ms", kb, tb * 1000 / Double(reps), tn * 1000 / Double(reps)))
        }
    case "layout":
        let layout = rankLayout(comm, blasThreadsOverride: options["threads"].flatMap { Int($0) })
        printLayout(comm, layout)
        say(comm, "OK layout \(layout.worldSize) \(layout.ranksPerNode) \(layout.blasThreads) \(layout.minUsableCPUs)")
    case "info":
        let thread = (comm as? MPICommunicator)?.providedThreadLevel ?? -1
        print("rank \(comm.rank)/\(comm.size) local \(comm.localRank)/\(comm.localSize) thread-level \(thread) mpi=\(comm is MPICommunicator)")
    default:
        throw UserFacing(description: "unknown command '\(command)'; see Sources/spade-dist-commcheck/main.swift")
    }
}
comm.finalize()
