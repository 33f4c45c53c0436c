// Multi-rank tests: each spawns mpirun on spade-dist-commcheck.
// Timings include mpirun start-up (~0.4 s).

import Foundation
import XCTest

final class MultiRankTests: XCTestCase {
    func testAllReduceBitwiseIdenticalOn2Ranks() throws {
        assertOK(try MPIRunner.run(np: 2, ["allreduce"]), "OK allreduce np=2")
    }

    func testAllReduceBitwiseIdenticalOn3Ranks() throws {
        let r = try MPIRunner.run(np: 3, ["allreduce"])
        assertOK(r, "OK allreduce np=3")
        // The data must make the order of summation matter, or bitwise equality proves nothing.
        XCTAssertFalse(r.stdout.contains("(0 elements"), r.stdout)
    }

    func testAllReduceBitwiseIdenticalOn4Ranks() throws {
        let r = try MPIRunner.run(np: 4, ["allreduce"], timeout: 60)
        assertOK(r, "OK allreduce np=4")
        XCTAssertFalse(r.stdout.contains("(0 elements"), r.stdout)
    }

    func testBucketedOverlappedReductionMatchesBlocking() throws {
        assertOK(try MPIRunner.run(np: 2, ["buckets", "--steps", "2", "--backward-ms", "40", "--total-mb", "4", "--bucket-kb", "512"]),
                 "OK buckets np=2 tensors=40")
    }

    func testBucketsStagedAndOutOfOrderOn3Ranks() throws {
        assertOK(try MPIRunner.run(np: 3, ["buckets", "--staged", "--shuffle", "--steps", "2", "--backward-ms", "20", "--total-mb", "2", "--bucket-kb", "256"]),
                 "OK buckets np=3")
    }

    func testBucketsUnmarkedGradientsAndNoPollOn4Ranks() throws {
        assertOK(try MPIRunner.run(np: 4, ["buckets", "--unmarked", "--no-poll", "--steps", "2", "--backward-ms", "10", "--total-mb", "1", "--bucket-kb", "128"], timeout: 60),
                 "OK buckets np=4")
    }

    func testSharedMemorySumsMatchBlockingBitwiseOn2Ranks() throws {
        assertOK(try MPIRunner.run(np: 2, ["buckets", "--shared", "--shuffle", "--steps", "3", "--backward-ms", "20", "--total-mb", "4", "--bucket-kb", "512"]),
                 "OK buckets (shared) np=2 tensors=40")
    }

    func testSharedMemorySumsUnmarkedAndNoPollOn3Ranks() throws {
        assertOK(try MPIRunner.run(np: 3, ["buckets", "--shared", "--unmarked", "--no-poll", "--steps", "3", "--backward-ms", "10", "--total-mb", "1", "--bucket-kb", "64"], timeout: 60),
                 "OK buckets (shared) np=3")
    }

    func testSharedMemoryNonFiniteSeenByAllRanks() throws {
        assertOK(try MPIRunner.run(np: 3, ["nonfinite", "--shared", "--rank", "2"]), "OK nonfinite np=3")
    }

    func testBroadcastAndReplicaDrift() throws {
        assertOK(try MPIRunner.run(np: 2, ["broadcast"]), "OK broadcast np=2")
        assertOK(try MPIRunner.run(np: 3, ["broadcast"]), "OK broadcast np=3")
    }

    func testNonFiniteSeenByAllRanks() throws {
        assertOK(try MPIRunner.run(np: 3, ["nonfinite", "--rank", "1"]), "OK nonfinite np=3")
    }

    func testConsistencyPassesWhenEqual() throws {
        assertOK(try MPIRunner.run(np: 2, ["consistency"]), "OK consistency np=2")
    }

    func testConsistencyMismatchNamesRankAndLineAndExits2() throws {
        let r = try MPIRunner.run(np: 3, ["consistency", "--differ"])
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 2, r.stderr)
        let message = "rank 0: config differs between rank 0 and rank 2 at line 2: rank 0 has 'ngf: 64', rank 2 has 'ngf: 32'"
        XCTAssertEqual(occurrences(of: message, in: r.stderr), 1, r.stderr)
        XCTAssertEqual(occurrences(of: "config differs", in: r.stderr), 1, "printed once: \(r.stderr)")
    }

    func testExceptionOnOneRankAbortsJobWithMessage() throws {
        let r = try MPIRunner.run(np: 3, ["throw", "--rank", "1", "--after", "0.5"], timeout: 20)
        XCTAssertFalse(r.timedOut, r.stderr)
        XCTAssertEqual(r.status, 1, r.stderr)
        XCTAssertEqual(occurrences(of: "rank 1: boom: simulated failure on one rank", in: r.stderr), 1, r.stderr)
        XCTAssertLessThan(r.seconds, 10, "job took \(r.seconds) s to end")
    }

    func testUserErrorOnOneRankExits2() throws {
        let r = try MPIRunner.run(np: 2, ["throw", "--code", "2", "--rank", "0"], timeout: 20)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("rank 0: bad file data/labels/0007.png"), r.stderr)
        XCTAssertLessThan(r.seconds, 10)
    }

    func testPreconditionFailureOnOneRankEndsJob() throws {
        let r = try MPIRunner.run(np: 2, ["crash", "--rank", "1"], timeout: 20)
        XCTAssertFalse(r.timedOut, r.stderr)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertLessThan(r.seconds, 10, "job took \(r.seconds) s to end")
    }

    func testRankExitingWithoutFinalizeEndsJob() throws {
        let r = try MPIRunner.run(np: 2, ["exit-early", "--rank", "1"], timeout: 20)
        XCTAssertFalse(r.timedOut, r.stderr)
        XCTAssertNotEqual(r.status, 0, r.stderr)
        XCTAssertLessThan(r.seconds, 10)
    }

    /// One rank is SIGKILLed while the others block in MPI_Allreduce: the job must
    /// end, non-zero, within 10 s of the kill.
    func testSIGKILLOfOneRankEndsJobWithin10Seconds() throws {
        let pidFile = FileManager.default.temporaryDirectory.appendingPathComponent("commcheck-\(UUID().uuidString).pid").path
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        var killedAt = Date.distantFuture
        let r = try MPIRunner.run(np: 3, ["hang", "--rank", "1", "--pid-file", pidFile], timeout: 30) {
            let t = Date()
            var pid: pid_t = 0
            while Date().timeIntervalSince(t) < 15 {
                if let s = try? String(contentsOfFile: pidFile, encoding: .utf8), let p = pid_t(s.trimmingCharacters(in: .whitespacesAndNewlines)) {
                    pid = p; break
                }
                usleep(50_000)
            }
            guard pid > 0 else { return }
            usleep(500_000)  // let the survivors enter the collective
            killedAt = Date()
            kill(pid, SIGKILL)
        }
        XCTAssertLessThan(killedAt, Date.distantFuture, "rank never wrote its pid")
        XCTAssertFalse(r.timedOut, "job hung after SIGKILL of one rank\n\(r.stderr)")
        XCTAssertNotEqual(r.status, 0)
        let afterKill = Date().timeIntervalSince(killedAt)
        XCTAssertLessThan(afterKill, 10, "job ended \(afterKill) s after the kill")
        XCTAssertTrue(r.stderr.contains("signal 9"), r.stderr)
    }

    func testLayoutLine() throws {
        let r = try MPIRunner.run(np: 2, ["layout"])
        assertOK(r, "OK layout 2 2")
        XCTAssertTrue(r.stderr.contains("world 2 ranks, 2 per node, "), r.stderr)
        XCTAssertEqual(occurrences(of: "world 2 ranks", in: r.stderr), 1, "printed once: \(r.stderr)")
    }

    func testWithoutMPIRunIsOneRankAndSingletonMPIWorks() throws {
        let plain = try MPIRunner.runDirect(["info"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stdout.contains("rank 0/1 local 0/1 thread-level -1 mpi=false"), plain.stdout)
        let singleton = try MPIRunner.runDirect(["info", "--force-mpi"])
        XCTAssertEqual(singleton.status, 0, singleton.stderr)
        XCTAssertTrue(singleton.stdout.contains("rank 0/1 local 0/1 thread-level 1 mpi=true"), singleton.stdout)
        let ranks = try MPIRunner.run(np: 2, ["info"])
        XCTAssertEqual(ranks.status, 0, ranks.stderr)
        XCTAssertTrue(ranks.stdout.contains("rank 1/2 local 1/2 thread-level 1 mpi=true"), ranks.stdout)
    }
}
