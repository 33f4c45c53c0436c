#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SpadeDist

/// Rank 0's progress output: on a terminal one line refreshed in place (`\r`, clear line);
/// otherwise (batch jobs, Slurm logs) a plain line every `everySteps` steps or `everySeconds`.
public final class ProgressDisplay {
    public let totalSteps: Int
    /// Images per generator step over all ranks (batchSize * world size).
    public let imagesPerStep: Int
    public let isTTY: Bool
    public let everySteps: Int
    public let everySeconds: Double
    private let enabled: Bool
    private let output: (String) -> Void
    private let clock: () -> Double
    private let startTime: Double
    private var window: [(time: Double, step: Int)] = []
    private var lastPrint = -Double.infinity
    private var lastLine = ""

    /// Seconds of history used for the it/s and ETA estimates.
    public static let rateWindowSeconds = 30.0

    /// - Parameters:
    ///   - startStep: the step the run starts (or resumes) from.
    ///   - rank: only rank 0 prints; other ranks get a silent display.
    ///   - isTTY: defaults to whether stdout is a terminal.
    ///   - everySteps: plain mode prints every this many steps (0 = by time only).
    ///   - everySeconds: plain mode also prints when this long has passed since the last line.
    ///   - output: where text goes (default: stdout, unbuffered).
    ///   - clock: seconds, monotonic (default: `monotonicSeconds`).
    public init(totalSteps: Int, startStep: Int, imagesPerStep: Int, rank: Int = 0,
                isTTY: Bool = ProgressDisplay.stdoutIsTerminal(), everySteps: Int = 0, everySeconds: Double = 20,
                output: @escaping (String) -> Void = ProgressDisplay.writeStdout,
                clock: @escaping () -> Double = monotonicSeconds) {
        self.totalSteps = totalSteps
        self.imagesPerStep = imagesPerStep
        self.enabled = rank == 0
        self.isTTY = isTTY
        self.everySteps = everySteps
        self.everySeconds = everySeconds
        self.output = output
        self.clock = clock
        self.startTime = clock()
        window = [(startTime, startStep)]
    }

    /// Reports that `step` generator steps are done; prints if due.
    public func update(step: Int, epoch: Int, lossD: Float, lossG: Float) {
        report(done: step) { rate, eta in
            Self.line(step: step, total: totalSteps, itPerSec: rate, imagesPerSec: rate * Double(imagesPerStep),
                      eta: eta, epoch: epoch, lossD: lossD, lossG: lossG)
        }
    }

    /// Reports that `done` of `totalSteps` items of another job (e.g. images generated) are done:
    /// `image 12/250 (4%) | 3.21 image/s | ETA 1m05s`.
    public func update(done: Int, unit: String) {
        report(done: done) { rate, eta in
            let pct = totalSteps > 0 ? min(100, done * 100 / totalSteps) : 100
            return "\(unit) \(done)/\(totalSteps) (\(pct)%) | \(Self.rate(rate)) \(unit)/s | ETA " + (eta.map(Self.duration) ?? "?")
        }
    }

    /// Updates the rate window with `done` and prints `line(rate, eta)` if due.
    private func report(done: Int, line makeLine: (Double, Double?) -> String) {
        guard enabled else { return }
        let now = clock()
        window.append((now, done))
        while window.count > 2 && now - window[1].time >= Self.rateWindowSeconds { window.removeFirst() }
        let first = window[0]
        let dt = now - first.time
        let rate = dt > 0 ? Double(done - first.step) / dt : 0
        let eta = rate > 0 ? Double(max(0, totalSteps - done)) / rate : nil
        let line = makeLine(rate, eta)
        lastLine = line
        if isTTY {
            guard now - lastPrint >= 0.1 || done >= totalSteps else { return }   // at most 10 refreshes/s
            output("\r\u{1B}[2K" + line)
            lastPrint = now
        } else {
            let dueBySteps = everySteps > 0 && done % everySteps == 0
            guard dueBySteps || now - lastPrint >= everySeconds || done >= totalSteps else { return }
            output("[" + Self.clockTime(now - startTime) + "] " + line + "\n")
            lastPrint = now
        }
    }

    /// Prints a message on its own line without garbling the in-place progress line.
    public func message(_ text: String) {
        guard enabled else { return }
        if isTTY {
            output("\r\u{1B}[2K" + text + "\n" + lastLine)
        } else {
            output(text + "\n")
        }
    }

    /// Ends the in-place line (TTY) so later output starts on a fresh line.
    public func finish() {
        guard enabled, isTTY, !lastLine.isEmpty else { return }
        output("\n")
    }

    // MARK: pure formatting

    /// `step 120/300 (40%) | 3.21 it/s | 12.8 img/s | ETA 56s | epoch 2 | D 1.234 G 5.678`
    public static func line(step: Int, total: Int, itPerSec: Double, imagesPerSec: Double, eta: Double?,
                            epoch: Int, lossD: Float, lossG: Float) -> String {
        let pct = total > 0 ? min(100, step * 100 / total) : 100
        return "step \(step)/\(total) (\(pct)%) | \(rate(itPerSec)) it/s | \(rate(imagesPerSec)) img/s | ETA "
            + (eta.map(duration) ?? "?") + " | epoch \(epoch) | D \(loss(lossD)) G \(loss(lossG))"
    }

    /// Compact duration: `42s`, `3m05s`, `1h02m`, `2d03h`.
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + pad(s % 60) + "s" }
        if s < 86400 { return "\(s / 3600)h" + pad(s / 60 % 60) + "m" }
        return "\(s / 86400)d" + pad(s / 3600 % 24) + "h"
    }

    /// Elapsed time as `HH:MM:SS` for plain-mode line prefixes.
    public static func clockTime(_ seconds: Double) -> String {
        let s = max(0, Int(seconds))
        return pad(s / 3600) + ":" + pad(s / 60 % 60) + ":" + pad(s % 60)
    }

    /// Rates with 3 significant digits: `0.123`, `3.21`, `12.8`, `456`.
    static func rate(_ r: Double) -> String {
        guard r.isFinite else { return "?" }
        if r >= 100 { return String(Int(r.rounded())) }
        if r >= 10 { return String(format: "%.1f", r) }
        if r >= 1 { return String(format: "%.2f", r) }
        return String(format: "%.3f", r)
    }

    static func loss(_ x: Float) -> String {
        x.isFinite ? String(format: "%.3f", Double(x)) : "\(x)"
    }

    private static func pad(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }

    /// Writes to stdout immediately (no buffering, so progress shows under mpirun and Slurm).
    public static func writeStdout(_ s: String) {
        var bytes = Array(s.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }

    /// Whether progress should be refreshed in place: stdout is a terminal, and under mpirun
    /// (Open MPI hands each rank a pseudo-terminal even when mpirun's own output goes to a file
    /// or a Slurm log) mpirun's stdout is a terminal too. `SPADE_DIST_PROGRESS=tty|plain` overrides.
    public static func stdoutIsTerminal(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        switch environment["SPADE_DIST_PROGRESS"] {
        case "tty": return true
        case "plain": return false
        default: break
        }
        guard isatty(STDOUT_FILENO) != 0 else { return false }
        #if os(Linux)
        if environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil,
           let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(getppid())/fd/1") {
            // The parent is mpirun (or orted on other nodes): where does its output go?
            return target.hasPrefix("/dev/pts/") || target.hasPrefix("/dev/tty")
        }
        #endif
        return true
    }
}
