import Foundation
import SpadeTrain
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif

final class ProgressTests: XCTestCase {
    func testPureFormatting() {
        XCTAssertEqual(ProgressDisplay.line(step: 120, total: 300, itPerSec: 3.2149, imagesPerSec: 12.86, eta: 56,
                                            epoch: 2, lossD: 1.2344, lossG: 5.6789),
                       "step 120/300 (40%) | 3.21 it/s | 12.9 img/s | ETA 56s | epoch 2 | D 1.234 G 5.679")
        XCTAssertEqual(ProgressDisplay.line(step: 1, total: 300, itPerSec: 0.01234, imagesPerSec: 456.4, eta: nil,
                                            epoch: 0, lossD: .nan, lossG: .infinity),
                       "step 1/300 (0%) | 0.012 it/s | 456 img/s | ETA ? | epoch 0 | D nan G inf")
        XCTAssertEqual(ProgressDisplay.duration(0), "0s")
        XCTAssertEqual(ProgressDisplay.duration(59.4), "59s")
        XCTAssertEqual(ProgressDisplay.duration(185), "3m05s")
        XCTAssertEqual(ProgressDisplay.duration(3720), "1h02m")
        XCTAssertEqual(ProgressDisplay.duration(2 * 86400 + 3 * 3600 + 100), "2d03h")
        XCTAssertEqual(ProgressDisplay.duration(.infinity), "?")
        XCTAssertEqual(ProgressDisplay.clockTime(3725), "01:02:05")
    }

    /// A fake clock and a captured output.
    final class Harness {
        var now = 1000.0
        var out: [String] = []
    }

    func testTTYRefreshesInPlaceWithRateAndETA() {
        let h = Harness()
        let p = ProgressDisplay(totalSteps: 100, startStep: 0, imagesPerStep: 4, isTTY: true,
                                output: { h.out.append($0) }, clock: { h.now })
        for step in 1...10 {
            h.now += 0.5                       // 2 it/s
            p.update(step: step, epoch: 0, lossD: 1, lossG: 2)
        }
        XCTAssertEqual(h.out.count, 10)
        XCTAssertEqual(h.out.last, "\r\u{1B}[2K" + "step 10/100 (10%) | 2.00 it/s | 8.00 img/s | ETA 45s | epoch 0 | D 1.000 G 2.000")
        XCTAssert(h.out.allSatisfy { $0.hasPrefix("\r\u{1B}[2K") && !$0.contains("\n") })
        // Refreshes are throttled to 10 per second.
        for step in 11...20 { h.now += 0.01; p.update(step: step, epoch: 0, lossD: 1, lossG: 2) }
        XCTAssertLessThanOrEqual(h.out.count, 12)
        p.message("checkpoint written")
        XCTAssert(h.out.last!.hasPrefix("\r\u{1B}[2Kcheckpoint written\nstep 20/100 (20%)"), h.out.last!)
        p.finish()
        XCTAssertEqual(h.out.last, "\n")
    }

    func testRateUsesRecentWindow() {
        let h = Harness()
        let p = ProgressDisplay(totalSteps: 1000, startStep: 0, imagesPerStep: 1, isTTY: true,
                                output: { h.out.append($0) }, clock: { h.now })
        for step in 1...100 { h.now += 1; p.update(step: step, epoch: 0, lossD: 0, lossG: 0) }       // 1 it/s
        for step in 101...300 { h.now += 0.25; p.update(step: step, epoch: 0, lossD: 0, lossG: 0) }  // 4 it/s for 50 s
        XCTAssert(h.out.last!.contains("| 4.00 it/s |"), h.out.last!)    // only the last 30 s count
        XCTAssert(h.out.last!.contains("ETA 2m55s"), h.out.last!)   // 700 steps at 4 it/s
    }

    func testPlainModePrintsEveryNStepsOrByTime() {
        let h = Harness()
        let p = ProgressDisplay(totalSteps: 50, startStep: 20, imagesPerStep: 2, isTTY: false, everySteps: 10,
                                everySeconds: 15, output: { h.out.append($0) }, clock: { h.now })
        for step in 21...50 {
            h.now += step == 33 ? 20 : 0.1   // one slow step: the time rule fires at 33
            p.update(step: step, epoch: 1, lossD: 0.5, lossG: 0.25)
        }
        let steps = h.out.map { Int($0.split(separator: " ")[2].split(separator: "/")[0])! }
        XCTAssertEqual(steps, [21, 30, 33, 40, 50])   // first line by time (nothing printed yet), N-step lines, slow step, last
        XCTAssert(h.out.allSatisfy { $0.hasSuffix("\n") && !$0.contains("\r") && !$0.contains("\u{1B}") })
        XCTAssert(h.out[0].hasPrefix("[00:00:00] step 21/50 (42%)"), h.out[0])
        p.finish()
        XCTAssertEqual(h.out.count, 5)
    }

    func testOtherRanksAreSilent() {
        let h = Harness()
        let p = ProgressDisplay(totalSteps: 10, startStep: 0, imagesPerStep: 1, rank: 1, isTTY: false,
                                output: { h.out.append($0) }, clock: { h.now })
        for s in 1...10 { h.now += 1; p.update(step: s, epoch: 0, lossD: 0, lossG: 0) }
        p.message("x")
        p.finish()
        XCTAssertEqual(h.out, [])
    }
}

final class StopSignalTests: XCTestCase {
    func testSIGUSR1AndSIGTERMSetTheFlag() {
        StopSignal.install()
        StopSignal.reset()
        XCTAssertFalse(StopSignal.requested)
        raise(SIGUSR1)
        XCTAssertTrue(StopSignal.requested)
        XCTAssertEqual(StopSignal.signal, SIGUSR1)
        StopSignal.reset()
        kill(getpid(), SIGTERM)     // the process survives: the handler only records it
        var spins = 0
        while !StopSignal.requested && spins < 1000 { usleep(1000); spins += 1 }
        XCTAssertEqual(StopSignal.signal, SIGTERM)
        raise(SIGTERM)              // a repeated SIGTERM must not kill the process either
        XCTAssertEqual(StopSignal.signal, SIGTERM)
        StopSignal.reset()
        XCTAssertFalse(StopSignal.requested)
    }
}

final class SamplesPageTests: XCTestCase {
    func testPageListsSamplesNewestFirstWithCurves() throws {
        let run = try makeTempDir("page")
        defer { try? FileManager.default.removeItem(atPath: run) }
        let page = SamplesPage(runDirectory: run, title: "tiny <run> & co")
        try FileManager.default.createDirectory(atPath: run + "/samples", withIntermediateDirectories: true)
        for step in [50, 150, 100] {
            _ = FileManager.default.createFile(atPath: page.samplePath(step: step), contents: Data([0x89]))
        }
        _ = FileManager.default.createFile(atPath: run + "/samples/notes.txt", contents: Data())
        var metrics: [MetricsRecord] = []
        for s in stride(from: 10, through: 150, by: 10) {
            var r = MetricsRecord(step: s, epoch: s / 50)
            r.loss_D = Float(s) / 150          // 1/15 ... 1
            r.loss_G = s == 80 ? .nan : 2      // one skipped step breaks the line; constant otherwise
            metrics.append(r)
        }
        try page.write(metrics: metrics, evalAccuracy: [100: 0.8125])
        let html = try String(contentsOfFile: run + "/index.html", encoding: .utf8)
        XCTAssertEqual(page.sampleSteps(), [150, 100, 50])
        let i150 = try XCTUnwrap(html.range(of: "samples/step_00000150.png")).lowerBound
        let i100 = try XCTUnwrap(html.range(of: "samples/step_00000100.png")).lowerBound
        let i50 = try XCTUnwrap(html.range(of: "samples/step_00000050.png")).lowerBound
        XCTAssert(i150 < i100 && i100 < i50)
        XCTAssert(html.contains("step 100, eval accuracy 81.2%"))
        XCTAssert(html.contains("<title>tiny &lt;run&gt; &amp; co</title>"))
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("http://") && html.contains("src=\"http"))
        for key in SamplesPage.plottedKeys { XCTAssert(html.contains("aria-label=\"\(key) vs step\""), key) }
        // loss_D: 15 points, a straight line from bottom-left (48, 148) to top-right (312, 18).
        let chartD = html.components(separatedBy: "aria-label=\"loss_D vs step\"")[1].components(separatedBy: "</svg>")[0]
        let pointsD = chartD.components(separatedBy: "points=\"")[1].components(separatedBy: "\"")[0].split(separator: " ")
        XCTAssertEqual(pointsD.count, 15)
        XCTAssertEqual(pointsD.first, "48.0,148.0")
        XCTAssertEqual(pointsD.last, "312.0,18.0")
        // loss_G: split into two polylines around the NaN at step 80.
        let chartG = html.components(separatedBy: "aria-label=\"loss_G vs step\"")[1].components(separatedBy: "</svg>")[0]
        XCTAssertEqual(chartG.components(separatedBy: "<polyline").count - 1, 2)
        // Well-formed XML (the page is XHTML-compatible), so browsers and tools parse it alike.
        let parser = XMLParser(data: Data(html.utf8))
        XCTAssertTrue(parser.parse(), "\(String(describing: parser.parserError))")
        // Rewritten atomically: no temporaries left.
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: run).contains { $0.hasPrefix(".tmp-") })
    }

    func testEmptyMetricsAndThinning() {
        let html = SamplesPage.html(title: "t", sampleSteps: [], metrics: [])
        XCTAssert(html.contains("no data yet"))
        let many = (0..<5000).map { (x: Double($0), y: Double($0 % 7)) }
        let thin = SamplesPage.thin(many)
        XCTAssertEqual(thin.count, SamplesPage.maxPoints)
        XCTAssertEqual(thin.last?.x, 4999)
        XCTAssertEqual(thin.first?.x, 0)
    }
}
