import Foundation
import SafeTensors
import SpadeTestSupport
import XCTest

/// launch/cluster-sim.sh: spade-dist on a simulated 3-host cluster (one network namespace per
/// host, TCP between them) on this machine, and a host dropping off the network mid-run.
/// The cluster is brought up once for the class, with a state directory and host prefix of
/// this test run's own, and torn down in the class tearDown. Skipped (not failed) only where
/// network namespaces cannot be made (not root, or `ip netns add` refused).
final class ClusterSimTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let script = root + "/launch/cluster-sim.sh"
    /// Unique per test run: hosts <prefix>1..3, bridge namespace <prefix>sw.
    static let tag = String(UUID().uuidString.filter(\.isHexDigit).prefix(6)).lowercased()
    static let prefix = "cs\(tag)h"
    static let state = FileManager.default.temporaryDirectory.appendingPathComponent("spade-cluster-sim-\(tag)").path
    static let hosts = 3

    /// nil: not tried yet; "": up; otherwise why the tests are skipped.
    nonisolated(unsafe) static var clusterState: String?

    /// `launch/cluster-sim.sh args` for this test run's cluster.
    @discardableResult
    static func sim(_ args: [String], timeout: Double = 60, environment: [String: String] = [:],
                    whileRunning: ((Process) -> Void)? = nil) throws -> ProcessResult {
        var env = ["CLUSTER_SIM_STATE": state, "CLUSTER_SIM_PREFIX": prefix, "SWIFT_BACKTRACE": "enable=no"]
        if let bin = CLI.binary { env["SPADE_DIST_BIN"] = bin }
        for (k, v) in environment { env[k] = v }
        return try ProcessRunner.run(script, args, timeout: timeout, environment: env, whileRunning: whileRunning)
    }

    static let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Brings the cluster up (once per test run), or throws XCTSkip when namespaces are impossible here.
    func cluster() throws {
        if Self.clusterState == nil {
            Self.clusterState = try Self.bringUp()
        }
        if let reason = Self.clusterState, !reason.isEmpty { throw XCTSkip(reason) }
    }

    static func bringUp() throws -> String {
        guard getuid() == 0 else { return "cluster-sim needs root (network namespaces); not root here" }
        guard let ip else { return "cluster-sim needs iproute2's `ip`; not found" }
        let probe = try ProcessRunner.run(ip, ["netns", "add", prefix + "probe"], timeout: 30)
        guard probe.status == 0 else {
            return "network namespaces cannot be created here (`ip netns add` failed: \(probe.output))"
        }
        try ProcessRunner.run(ip, ["netns", "del", prefix + "probe"], timeout: 30)
        // The first `up` may install packages (iptables, libnetfilter-queue-dev) with apt.
        let up = try sim(["up", "\(hosts)"], timeout: 600)
        XCTAssertEqual(up.status, 0, "cluster-sim up failed:\n\(up.output)")
        return up.status == 0 ? "" : "cluster-sim up failed (see the failure above)"
    }

    override class func tearDown() {
        if clusterState != nil {
            // Also after a failed `up`: down removes whatever part of the cluster exists.
            let down = try? sim(["down"], timeout: 120)
            if down?.status != 0 { print("cluster-sim down failed: \(down?.output ?? "did not run")") }
        }
        super.tearDown()
    }

    /// PIDs still inside the hosts' namespaces (the run's reaper must leave none).
    func leftoverProcesses() throws -> String {
        var out = ""
        for i in 1...Self.hosts {
            let r = try ProcessRunner.run(Self.ip!, ["netns", "pids", "\(Self.prefix)\(i)"], timeout: 30)
            let pids = r.stdout.split(separator: "\n")
            if !pids.isEmpty { out += "\(Self.prefix)\(i): \(pids.joined(separator: " ")) " }
        }
        return out
    }

    /// 3 hosts x 1 rank train the tiny synthetic config for 3 steps over the simulated network.
    func testThreeHostsTrainTinyConfig() throws {
        try cluster()
        let exe = try CLI.exe()
        // Each rank runs on a host of its own: `hostname` under the same mpirun set-up.
        let names = try Self.sim(["run", "--"], environment: ["SPADE_DIST_BIN": "/bin/hostname"])
        XCTAssertEqual(names.status, 0, names.output)
        XCTAssertEqual(names.stdout.split(separator: "\n").map(String.init).sorted(),
                       (1...Self.hosts).map { "\(Self.prefix)\($0)" }, names.output)

        let dir = try CLI.tempDir("cluster-sim")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.sim(["run", "--", "train", "--steps", "3", "--run-dir", dir + "/run",
                              "--set", "blas_threads=1", "--set", "log_every=1"],
                             timeout: 180, environment: ["SPADE_DIST_BIN": exe])
        E2E.assertSuccess(r, "3-host training")
        // Rank 0's start-up lines: 3 ranks, one per node, so summed across the nodes over TCP.
        XCTAssert(r.output.contains("world 3 ranks, 1 per node"), r.output)
        XCTAssert(r.output.contains("batch 2 per rank x 3 rank(s), gradients summed in node-shared memory, then across 3 nodes by reduce-scatter (float32)"), r.output)
        XCTAssert(r.output.contains("done at step 3"), r.output)
        let ck = try SafeTensorsFile.read(path: dir + "/run/checkpoints/latest.safetensors")
        XCTAssertEqual(ck.metadata["world_size"], "3")
        XCTAssertEqual(ck.metadata["step"], "3")
        let hostfile = try String(contentsOfFile: Self.state + "/hostfile", encoding: .utf8)
        XCTAssertEqual(hostfile, (1...Self.hosts).map { "\(Self.prefix)\($0) slots=1\n" }.joined())
        XCTAssertEqual(try leftoverProcesses(), "")
    }

    /// A host's link going down mid-run ends the job (non-zero) within 20 s instead of hanging:
    /// OpenMPI's OOB keepalive, as cluster-sim.sh sets it, notices the partition.
    func testHostLinkDownEndsTheJobPromptly() throws {
        let seconds = try trainUntilFault(["fault", "\(Self.prefix)2", "down"], limit: 20)
        print("cluster-sim: \(Self.prefix)2 down -> the job ended \(String(format: "%.1f", seconds)) s later")
    }

    /// SIGKILL to the rank on a host (a crashed node with its link up) ends the job fast.
    func testKillingTheRankOnAHostEndsTheJob() throws {
        let seconds = try trainUntilFault(["kill", "\(Self.prefix)3"], limit: 15)
        print("cluster-sim: kill \(Self.prefix)3 -> the job ended \(String(format: "%.1f", seconds)) s later")
    }

    /// Trains 3 x 1 ranks until `fault` (cluster-sim.sh arguments) is applied once training
    /// runs; asserts the job then ends non-zero within `limit` seconds, leaving no processes.
    /// Returns the seconds from the fault to the end of `run`.
    func trainUntilFault(_ fault: [String], limit: Double) throws -> Double {
        try cluster()
        let exe = try CLI.exe()
        let dir = try CLI.tempDir("cluster-sim-fault")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        defer { _ = try? Self.sim(["clear", "all"]) }
        let metrics = dir + "/run/metrics.jsonl"
        var faultAt: Date?
        let r = try Self.sim(["run", "--", "train", "--steps", "100000", "--run-dir", dir + "/run",
                              "--set", "blas_threads=1", "--set", "log_every=1", "--set", "checkpoint_every=100000"],
                             timeout: 180, environment: ["SPADE_DIST_BIN": exe]) { process in
            // Only once training runs: a host cut off during the launch, before its daemon has
            // called back, ends the job only after TCP's connect timeout (~2 min; docs/distributed.md).
            let started = E2E.waitFor(process, timeout: 120) {
                ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").contains("\n")
            }
            guard started else { return }
            let f = try? Self.sim(fault)
            XCTAssertEqual(f?.status, 0, f?.output ?? "")
            faultAt = Date()
        }
        guard let faultAt else {
            XCTFail("training never started:\n\(r.output)")
            return .infinity
        }
        let seconds = Date().timeIntervalSince(faultAt)
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertLessThan(seconds, limit, r.output)
        XCTAssertEqual(try leftoverProcesses(), "", "the run left processes in the hosts")
        return seconds
    }
}
