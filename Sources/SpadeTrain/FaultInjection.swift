import Foundation
import SpadeNN

/// Test-only fault injection (docs/robustness.md), off unless its environment variable is set:
/// `SPADE_DIST_TEST_NAN_GRADIENT=R:S` makes rank R write a NaN into the first gradient its
/// backward finalises during generator step S (`R:S+`: during every step from S on). The NaN is
/// written before that gradient is handed to the reduction, so it takes the path a real one
/// would: detected on the ranks, agreed through the per-step status exchange, step skipped.
final class NaNGradientInjection: GradientObserver {
    static let variable = "SPADE_DIST_TEST_NAN_GRADIENT"

    private let next: GradientObserver?
    private let firstStep: Int
    private let persistent: Bool
    private var armed = false

    /// The injection for `rank` if the variable names it; nil otherwise. A malformed value is
    /// a usage error: a test that meant to inject must not pass silently without it.
    static func fromEnvironment(rank: Int, forwardingTo next: GradientObserver?) throws -> NaNGradientInjection? {
        guard let spec = ProcessInfo.processInfo.environment[variable], !spec.isEmpty else { return nil }
        let persistent = spec.hasSuffix("+")
        let parts = (persistent ? spec.dropLast() : Substring(spec)).split(separator: ":")
        guard parts.count == 2, let r = Int(parts[0]), let s = Int(parts[1]), r >= 0, s >= 1 else {
            throw ConfigError(source: variable, "expected RANK:STEP or RANK:STEP+, got '\(spec)'")
        }
        guard r == rank else { return nil }
        return NaNGradientInjection(next: next, firstStep: s, persistent: persistent)
    }

    private init(next: GradientObserver?, firstStep: Int, persistent: Bool) {
        self.next = next
        self.firstStep = firstStep
        self.persistent = persistent
    }

    /// Called before each generator step's iterations (1-based step number).
    func begin(step: Int) {
        armed = persistent ? step >= firstStep : step == firstStep
    }

    func gradientReady(_ parameter: ParamRef, in state: ModelState) {
        if armed {
            state.grad(parameter)[0] = .nan
            armed = false
        }
        next?.gradientReady(parameter, in: state)
    }

    func poll() { next?.poll() }
}
