import Foundation
import SpadeTestSupport
import XCTest

/// `spade-dist bench conv|step --json`: the machine-readable contract of issue 2 (no timing
/// assertions: the machine is shared; only that every field is there and consistent).
final class BenchCommandTests: XCTestCase {
    /// A 32x32 model: small enough to time in a second, large enough that its last generator
    /// block (32x32) takes the Winograd path and smaller maps the im2col one.
    let model = ["--set", "crop_size=32", "--set", "ngf=8", "--set", "ndf=8", "--set", "spade_hidden=16",
                 "--set", "batchSize=2", "--set", "blas_threads=1"]

    func json(_ args: [String]) throws -> Any {
        let r = try CLI.run(args)
        XCTAssertEqual(r.status, 0, r.output)
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    func testBenchConvListsEveryConvolutionWithItsGEMMBaseline() throws {
        let rows = try XCTUnwrap(try json(["bench", "conv", "--repeats", "1", "--json"] + model) as? [[String: Any]])
        XCTAssertGreaterThan(rows.count, 20)
        var algorithms = Set<String>()
        for row in rows {
            let name = row["name"] as? String ?? "?"
            XCTAssertTrue(name.hasPrefix("netG.") || name.hasPrefix("netD."), name)
            XCTAssertNotNil(row["kernel"] as? Int, name)
            for key in ["conv_seconds", "gemm_seconds", "algorithm_gemm_seconds", "gflop"] {
                XCTAssertGreaterThan(row[key] as? Double ?? -1, 0, "\(name).\(key)")
            }
            let algorithm = row["algorithm"] as? String ?? "?"
            algorithms.insert(algorithm)
            // the one-hot-input layers keep the exact direct GEMM (see SPADE.shared)
            if name.hasSuffix("mlp_shared.0") || name == "netG.fc" { XCTAssertEqual(algorithm, "im2col", name) }
            if row["kernel"] as? Int == 4 { XCTAssertEqual(algorithm, "im2col", name) }
        }
        XCTAssertEqual(algorithms, ["im2col", "winograd", "pointwise"])
    }

    func testBenchStepReportsIterationTimeAndMemory() throws {
        let step = try XCTUnwrap(try json(["bench", "step", "--repeats", "1", "--json"] + model) as? [String: Any])
        let seconds = try XCTUnwrap(step["seconds_per_iteration"] as? Double)
        let images = try XCTUnwrap(step["images_per_second"] as? Double)
        XCTAssertGreaterThan(seconds, 0)
        XCTAssertEqual(images * seconds, 2, accuracy: 1e-6)   // batch 2
        XCTAssertGreaterThan(step["activation_bytes"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(step["parameter_bytes"] as? Int ?? 0, 0)
    }
}
