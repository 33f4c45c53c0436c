// How many OpenBLAS threads each rank gets, and the one start-up line that says so.

import CMPI
import Foundation

/// OpenBLAS threads per rank: `override` if given (> 0), else the node's cores
/// shared evenly among the ranks on the node (at least 1).
public func blasThreadsPerRank(localSize: Int, cores: Int, override: Int?) -> Int {
    if let o = override, o > 0 { return o }
    return max(1, cores / max(1, localSize))
}

/// CPU counts of this process.
public struct CPUCounts: Sendable, Equatable {
    /// Online CPUs of the node (sysconf).
    public var online: Int
    /// CPUs this process may run on (sched_getaffinity); smaller than `online`
    /// when the launcher binds ranks (mpirun binds to a core for np <= 2).
    public var usable: Int
}

/// Online and usable CPU counts of this process.
public func detectCPUs() -> CPUCounts {
    let online = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    let affinity = Int(cmpi_affinity_cpu_count())
    return CPUCounts(online: online, usable: affinity > 0 ? min(affinity, online) : online)
}

/// The world's rank/thread layout, agreed on by all ranks (collective).
public struct RankLayout: Sendable, Equatable {
    public var worldSize: Int
    public var ranksPerNode: Int          // this node's; the max over nodes is reported
    public var blasThreads: Int
    public var coresPerNode: Int
    /// Smallest number of CPUs any rank may run on.
    public var minUsableCPUs: Int

    /// "world 2 ranks, 2 per node, 1 BLAS threads per rank (2 cores per node)", plus a
    /// warning when binding leaves a rank fewer CPUs than BLAS threads.
    public var description: String {
        var s = "world \(worldSize) ranks, \(ranksPerNode) per node, \(blasThreads) BLAS threads per rank (\(coresPerNode) cores per node"
        if minUsableCPUs < coresPerNode { s += "; each rank bound to >= \(minUsableCPUs) cores" }
        s += ")"
        if minUsableCPUs < blasThreads {
            s += "\nwarning: a rank may run on only \(minUsableCPUs) core(s) but uses \(blasThreads) BLAS threads; the launcher bound it (mpirun: use --bind-to none, or --map-by slot:PE=\(blasThreads))"
        }
        return s
    }
}

/// Computes the layout (threads from the cores of the node and the ranks on
/// it, or `override`); one small reduction so every rank agrees. Call on all ranks.
public func rankLayout(_ comm: Communicator, blasThreadsOverride: Int? = nil,
                       cpus: CPUCounts = detectCPUs()) -> RankLayout {
    let threads = blasThreadsPerRank(localSize: comm.localSize, cores: cpus.online, override: blasThreadsOverride)
    // max of (ranks per node, cores, -usable) over ranks
    let m = comm.allReduceMax([Int64(comm.localSize), Int64(cpus.online), Int64(-cpus.usable), Int64(threads)])
    return RankLayout(worldSize: comm.size, ranksPerNode: Int(m[0]), blasThreads: Int(m[3]),
                      coresPerNode: Int(m[1]), minUsableCPUs: Int(-m[2]))
}

/// Rank 0 prints the layout line once (to stderr, so stdout stays machine-readable).
public func printLayout(_ comm: Communicator, _ layout: RankLayout) {
    if comm.rank == 0 {
        FileHandle.standardError.write(Data((layout.description + "\n").utf8))
    }
}
