import XCTest
import SafeTensors
import SpadeCore
import SpadeNN
import SpadeTestSupport

/// Tolerances from reference/README.md ("recommended" column).
enum Tol {
    static let op = 1e-5          // single ops, spade/resblock modules, BN stats, u/v, sigma
    static let network = 2e-5     // network forward values
    static let grad = 1e-4        // network gradients, per tensor
    /// Structurally-zero gradients: |g| <= 1e-5 * max |grad| over the network.
    static let zeroGrad = 1e-5
}

extension SafeTensorsFile {
    /// A fixture tensor as an arena-backed NCHW Tensor (1-D/2-D shapes padded with 1s).
    func tensor(_ name: String, _ arena: Arena) throws -> Tensor {
        let v = try f(name)
        let s = try shape(name)
        let d = s + [Int](repeating: 1, count: max(0, 4 - s.count))
        let t = arena.tensor(d[0], d[1], d[2], d[3])
        t.copy(from: v)
        return t
    }

    /// Loads every `<prefix><key>` tensor into `state` (parameters, buffers, counters).
    func load(into state: ModelState, prefix: String) throws {
        for key in state.stateKeys {
            guard let rec = tensors[prefix + key] else { throw FixtureMissing(prefix + key) }
            if rec.dtype == .i64 && rec.shape.isEmpty {
                XCTAssertTrue(state.setCounter(named: key, rec.int64s[0]))
            } else {
                XCTAssertTrue(state.assign(key, rec.floats), key)
            }
        }
    }
}

func assertClose(_ actual: [Float], _ expected: [Float], rel: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line); return
    }
    let e = relativeError(actual, expected)
    XCTAssertLessThanOrEqual(e, rel, "\(what): relative error \(e)", file: file, line: line)
}

func assertClose(_ actual: Tensor, _ expected: [Float], rel: Double, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    assertClose(actual.toArray(), expected, rel: rel, what, file: file, line: line)
}

/// Compares every gradient of `state` with `<prefix><key>` in the fixture. Names in
/// `zeroNames` are checked with the README's absolute bound |g| <= 1e-5 * max|grad|.
/// Returns the worst relative error of the others.
@discardableResult
func assertGradients(_ state: ModelState, _ fx: SafeTensorsFile, prefix: String, zeroNames: Set<String> = [],
                     file: StaticString = #filePath, line: UInt = #line) throws -> Double {
    let r = try checkGradients(names: state.params.map(\.name), actual: { state.gradient(named: $0)! },
                               expected: { try fx.f(prefix + $0) }, zeroNames: zeroNames)
    for f in r.failures { XCTFail(f, file: file, line: line) }
    return r.worstRelative
}
