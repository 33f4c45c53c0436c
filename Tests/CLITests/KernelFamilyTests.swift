import Foundation
import SpadeCore
import SpadeTestSupport
import XCTest

/// The numerics tests must pass whatever kernel family OpenBLAS runs: each family sums a GEMM
/// in its own order (Haswell: AVX2, SkylakeX and Cooperlake: AVX-512), and a tolerance tuned
/// to one of them is a red suite on the next machine. This reruns the kernel-sensitive tests
/// (every layer and whole-network fixture, one and two ranks against the iteration fixtures,
/// the teacher-forced multi-rank steps) in a child process under a second family, so such a
/// tolerance fails here rather than on a newcomer's machine.
final class KernelFamilyTests: XCTestCase {
    static let childVariable = "SPADE_TEST_EXPECT_BLAS_CORE"

    static let kernelSensitiveTests = [
        "SpadeNNTests.LayerTests",
        "SpadeNNTests.NetworkTests",
        "CLITests.DistributedTrainingTests/testOneProcessBatch2CheckpointMatchesIterationFixture",
        "CLITests.DistributedTrainingTests/testTwoRanksBatch2ReproduceBatch4Fixture",
        "CLITests.DistributedTrainingTests/testLaterStepFromTheSameStateAgreesAcrossRankCounts",
    ]

    func testKernelSensitiveTestsPassUnderASecondKernelFamily() throws {
        if ProcessInfo.processInfo.environment[Self.childVariable] != nil { return }  // we are the child
        let current = BLASThreads.coreName
        guard let other = Self.secondFamily(besides: current) else {
            throw XCTSkip("no second OpenBLAS kernel family with AVX2 or better on this CPU (running \(current))")
        }
        let exe = Bundle.main.executablePath ?? CommandLine.arguments[0]
        let filter = (["CLITests.KernelFamilyTests/testChildRunsTheRequestedFamily"] + Self.kernelSensitiveTests).joined(separator: ",")
        let start = Date()
        let r = try ProcessRunner.run(exe, [filter], timeout: 600,
                                      environment: ["OPENBLAS_CORETYPE": other, Self.childVariable: other])
        let summary = r.output.split(separator: "\n").last { $0.contains("Executed") } ?? "no XCTest summary"
        print("kernel-sensitive tests under \(other) (this process: \(current)): \(summary.trimmingCharacters(in: .whitespaces)) " +
              "in \(String(format: "%.0f", Date().timeIntervalSince(start))) s")
        XCTAssertFalse(r.timedOut)
        XCTAssertEqual(r.status, 0, "under OPENBLAS_CORETYPE=\(other):\n" +
                       r.output.split(separator: "\n").filter { $0.contains("error:") }.joined(separator: "\n"))
        // Every selected test ran (a renamed test would otherwise drop out silently): the child's
        // own check plus the three single tests and both fixture classes (at least one test each).
        let executed = summary.split(whereSeparator: \.isWhitespace).dropFirst().first.flatMap { Int($0) } ?? 0
        XCTAssertGreaterThanOrEqual(executed, 6, String(summary))
    }

    /// The child's first test: OpenBLAS really runs the family the parent asked for.
    func testChildRunsTheRequestedFamily() throws {
        guard let expected = ProcessInfo.processInfo.environment[Self.childVariable] else {
            throw XCTSkip("runs only as the child of testKernelSensitiveTestsPassUnderASecondKernelFamily")
        }
        XCTAssertEqual(BLASThreads.coreName.lowercased(), expected.lowercased())
    }

    /// Haswell (AVX2) unless that is what runs; then an AVX-512 family where the CPU has it.
    static func secondFamily(besides current: String) -> String? {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init) ?? []
        guard flags.contains("avx2") && flags.contains("fma") else { return nil }
        if current.lowercased() != "haswell" { return "Haswell" }
        return flags.contains("avx512f") ? "SkylakeX" : nil
    }
}
