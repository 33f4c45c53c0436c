// Gradients on the wire between nodes (`gradient_dtype: bfloat16`): the rounding against its
// definition (the nearest bfloat16, ties to even, computed independently in Double), and the
// float32 sums of bfloat16 parts against Swift's own float32 arithmetic in the same order.

import CKernels
import SpadeCore
import Foundation
@testable import SpadeDist
import XCTest

final class GradientWireTests: XCTestCase {
    private func bfloat16(_ x: Float) -> UInt16 {
        var out: UInt16 = 0
        withUnsafePointer(to: x) { spade_float_to_bfloat16($0, &out, 1) }
        return out
    }

    private func float(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

    func testRoundingIsToTheNearestBfloat16TiesToEven() {
        var rng = SplitMix64(seed: 12)
        var values: [Float] = [0, -0, 1, -1, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, .leastNormalMagnitude, 1 + 0x1p-8, 1 + 3 * 0x1p-8]
        for _ in 0..<20_000 {
            // Every exponent and random mantissa bits, ties (low 16 bits 0x8000) included.
            var bits = UInt32(truncatingIfNeeded: rng.next())
            if bits & 0x7f80_0000 == 0x7f80_0000 { continue }
            if rng.next() % 8 == 0 { bits = bits & 0xffff_0000 | 0x8000 }
            values.append(Float(bitPattern: bits))
        }
        for x in values {
            let h = bfloat16(x)
            let truncated = UInt16(x.bitPattern >> 16)
            // The two bfloat16 around x (same sign); above the largest one (0x1.fep127) lies Inf,
            // which x reaches from the midpoint 0x1.ffp127 on.
            let candidates = [truncated, truncated &+ 1]
            let errors = candidates.map { c -> Double in
                let v = float(c)
                return v.isInfinite ? (Double(x.magnitude) >= 0x1.ffp127 ? 0 : .infinity) : abs(Double(v) - Double(x))
            }
            let expected = errors[0] < errors[1] ? candidates[0] : errors[1] < errors[0] ? candidates[1]
                : candidates.first { $0 & 1 == 0 }!
            XCTAssertEqual(h, expected, "\(x) (bits \(String(x.bitPattern, radix: 16)))")
        }
    }

    func testSpecialValuesKeepTheirKind() {
        XCTAssertEqual(float(bfloat16(.infinity)), .infinity)
        XCTAssertEqual(float(bfloat16(-.infinity)), -.infinity)
        XCTAssertTrue(float(bfloat16(.nan)).isNaN)
        // A NaN whose payload sits only in the dropped bits must not round to Inf.
        XCTAssertTrue(float(bfloat16(Float(bitPattern: 0x7f80_0001))).isNaN)
        XCTAssertTrue(float(bfloat16(Float(bitPattern: 0xff80_ffff))).isNaN)
    }

    func testBfloat16PartsAreSummedInFloat32InOrder() {
        var rng = SplitMix64(seed: 7)
        let n = 5000, nparts = 3
        let parts: [[UInt16]] = (0..<nparts).map { _ in
            (0..<n).map { _ in UInt16(truncatingIfNeeded: rng.next() >> 16) & 0xbfff }   // finite values
        }
        var out = [Float](repeating: 0, count: n)
        let pointers: [UnsafePointer<UInt16>?] = parts.map { p in p.withUnsafeBufferPointer { $0.baseAddress } }
        parts[0].withUnsafeBufferPointer { _ in
            parts[1].withUnsafeBufferPointer { _ in
                parts[2].withUnsafeBufferPointer { _ in
                    spade_sum_bfloat16_into(&out, pointers, nparts, n)
                }
            }
        }
        for i in 0..<n {
            let expected = (float(parts[0][i]) + float(parts[1][i])) + float(parts[2][i])
            XCTAssertEqual(out[i].bitPattern, expected.bitPattern, "element \(i)")
        }
    }

    /// On the wire as bfloat16, a node's own piece is rounded like the others' (the sum must not
    /// depend on which node owns a piece); one node: the sum is the rounded gradient itself.
    func testOwnPieceIsRoundedLikeTheOthers() {
        let comm = SingleProcessCommunicator()
        let exchange = CrossNodeExchange(communicator: comm, shards: [0..<40], wire: .bfloat16)
        var store = (0..<40).map { Float($0) * 1.000123 + 0.1 }
        let original = store
        store.withUnsafeMutableBufferPointer { exchange.startSum(0, store: $0.baseAddress!) }
        XCTAssertTrue(exchange.test(0))
        store.withUnsafeMutableBufferPointer { exchange.finishSum(0, store: $0.baseAddress!) }
        XCTAssertEqual(exchange.ownedPiece(0), 0..<40)
        for i in 0..<40 { XCTAssertEqual(store[i], float(bfloat16(original[i])), "element \(i)") }
    }
}
