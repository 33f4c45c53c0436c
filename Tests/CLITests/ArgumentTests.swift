import Foundation
import SpadeTestSupport
import XCTest

/// Counts given on the command line are checked by the argument parser before any work: exit 2
/// and one error line naming the option, never a trap or a result computed from nothing.
final class ArgumentTests: XCTestCase {
    func testNonPositiveCountsAreArgumentErrors() throws {
        let dir = try CLI.tempDir("arguments")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases: [([String], String)] = [
            (["bench", "step", "--repeats=0"], "--repeats"),
            (["bench", "conv", "--repeats=-2"], "--repeats"),
            (["eval", "--checkpoint", dir + "/none.safetensors", "--count=0"], "--count"),
            (["synth-data", "--out", dir + "/synth", "--count=0"], "--count"),
            (["synth-data", "--out", dir + "/synth", "--size=0"], "--size"),
            (["synth-data", "--out", dir + "/synth", "--classes=9"], "--classes"),
        ]
        for (args, option) in cases {
            let r = try E2E.run(args)
            XCTAssertEqual(r.status, 2, "\(args): \(r.output)")
            let firstLine = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
            XCTAssertTrue(firstLine.hasPrefix("Error: ") && firstLine.contains(option), "\(args): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/synth"), "\(args) wrote output")
        }
    }
}
