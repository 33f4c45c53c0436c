import SpadeCore
import XCTest

/// Small checks of SpadeCore's primitives (the layer tests in SpadeNNTests cover them in depth).
/// This file also keeps the SpadeCoreTests target that Package.swift declares non-empty:
/// without a source file here, `swift build` fails on a fresh clone.
final class CoreSmokeTests: XCTestCase {
    func testSgemmMatchesNaiveProduct() {
        let m = 5, n = 7, k = 3
        let a = (0..<(m * k)).map { Float($0 % 5) - 2 }
        let b = (0..<(k * n)).map { Float($0 % 3) - 1 }
        var c = [Float](repeating: 0, count: m * n)
        sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, beta: 0, c: &c, ldc: n)
        for i in 0..<m {
            for j in 0..<n {
                let ref = (0..<k).reduce(Float(0)) { $0 + a[i * k + $1] * b[$1 * n + j] }
                XCTAssertEqual(c[i * n + j], ref, "C[\(i),\(j)]")
            }
        }
    }

    func testIm2colOfOneByOneKernelIsIdentity() {
        let g = ConvGeometry(cin: 2, kernel: 1, stride: 1, pad: 0, h: 3, w: 4)
        let x = (0..<(2 * 3 * 4)).map { Float($0) }
        var col = [Float](repeating: -1, count: g.colRows * g.outH * g.outW)
        im2col(x, samples: 1, g, col: &col)
        XCTAssertEqual(col, x)
    }

    func testArenaReusesMemoryAfterReset() {
        let arena = Arena(bytes: 4096)
        _ = arena.floats(100)
        _ = arena.floats(2000)
        arena.reset()
        let before = arena.systemAllocations
        _ = arena.floats(100)
        _ = arena.floats(2000)
        XCTAssertEqual(arena.systemAllocations, before)
    }
}
