import Foundation

/// `run_dir/index.html`: sample grids newest first and inline-SVG loss curves, readable
/// offline (no scripts, no network); rewritten atomically after each sample.
public struct SamplesPage: Sendable {
    public let runDirectory: String
    public let title: String

    /// The series plotted, one small chart each (vs step).
    public static let plottedKeys = ["loss_D", "loss_G", "D_Fake", "D_real", "G_GAN", "G_GANFeat"]
    /// Most points drawn per curve (longer series are thinned evenly, keeping the last point).
    public static let maxPoints = 800

    public init(runDirectory: String, title: String) {
        self.runDirectory = runDirectory
        self.title = title
    }

    /// `step_00000500.png`: a sample grid's file name inside `samples/`.
    public static func sampleFileName(step: Int) -> String {
        let d = String(step)
        return "step_" + String(repeating: "0", count: max(0, 8 - d.count)) + d + ".png"
    }

    /// `<run_dir>/samples/step_XXXXXXXX.png`.
    public func samplePath(step: Int) -> String { runDirectory + "/samples/" + Self.sampleFileName(step: step) }

    /// Steps of the sample grids present in `samples/`, newest first.
    public func sampleSteps() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: runDirectory + "/samples")) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("step_"), name.hasSuffix(".png") else { return nil }
            return Int(name.dropFirst(5).dropLast(4))
        }.sorted(by: >)
    }

    /// Rewrites index.html from the grids on disk and `metrics`; `evalAccuracy` maps a sample step to an accuracy in [0, 1].
    public func write(metrics: [MetricsRecord], evalAccuracy: [Int: Float] = [:]) throws {
        let page = Self.html(title: title, sampleSteps: sampleSteps(), metrics: metrics, evalAccuracy: evalAccuracy)
        try AtomicFile.write(page, to: runDirectory + "/index.html")
    }

    /// The page (XHTML-compatible HTML5): curves first, then samples in the order given.
    public static func html(title: String, sampleSteps: [Int], metrics: [MetricsRecord],
                            evalAccuracy: [Int: Float] = [:]) -> String {
        var h = documentStart(title: title, style: """
            .charts { display: flex; flex-wrap: wrap; gap: 8px; }
            figure { margin: 0 0 1.5em 0; }
            img { image-rendering: pixelated; max-width: 100%; }
            svg text { font-size: 10px; font-family: sans-serif; }
            """)
        if let last = metrics.last {
            h += "<p>step \(last.step), epoch \(last.epoch); \(sampleSteps.count) sample grid\(sampleSteps.count == 1 ? "" : "s"). Each grid: label | generated | real.</p>\n"
        }
        h += "<h2>Losses</h2>\n<div class=\"charts\">\n"
        for key in plottedKeys {
            h += chart(key, metrics.map { (Double($0.step), Double($0[key] ?? .nan)) })
        }
        h += "</div>\n<h2>Samples (newest first)</h2>\n"
        for step in sampleSteps {
            let file = "samples/" + sampleFileName(step: step)
            var caption = "step \(step)"
            if let acc = evalAccuracy[step] { caption += String(format: ", eval accuracy %.1f%%", Double(acc) * 100) }
            h += "<figure><figcaption>\(caption)</figcaption><a href=\"\(file)\"><img src=\"\(file)\" alt=\"\(caption)\" loading=\"lazy\" /></a></figure>\n"
        }
        h += "</body>\n</html>\n"
        return h
    }

    /// One SVG line chart: axes with min/max labels and a polyline per finite run of points.
    static func chart(_ name: String, _ points: [(x: Double, y: Double)]) -> String {
        let width = 320.0, height = 170.0, left = 48.0, right = 8.0, top = 18.0, bottom = 22.0
        let pts = thin(points)
        let finite = pts.filter { $0.y.isFinite }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(name) vs step\">\n"
        s += "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"white\" stroke=\"#ccc\" />\n"
        s += "<text x=\"\(Int(left))\" y=\"12\">\(name)</text>\n"
        guard let x0 = finite.map(\.x).min(), let x1 = finite.map(\.x).max(),
              let y0 = finite.map(\.y).min(), let y1 = finite.map(\.y).max() else {
            return s + "<text x=\"\(Int(left))\" y=\"\(Int(height / 2))\">no data yet</text>\n</svg>\n"
        }
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * plotW }
        func py(_ y: Double) -> Double { top + (y1 > y0 ? (y1 - y) / (y1 - y0) : 0.5) * plotH }
        let axisBottom = fmt(top + plotH)
        s += "<path d=\"M\(fmt(left)),\(fmt(top))V\(axisBottom)H\(fmt(left + plotW))\" fill=\"none\" stroke=\"#888\" />\n"
        s += "<text x=\"\(fmt(left - 4))\" y=\"\(fmt(top + 4))\" text-anchor=\"end\">\(label(y1))</text>\n"
        s += "<text x=\"\(fmt(left - 4))\" y=\"\(fmt(top + plotH))\" text-anchor=\"end\">\(label(y0))</text>\n"
        s += "<text x=\"\(fmt(left))\" y=\"\(fmt(height - 6))\">\(label(x0))</text>\n"
        s += "<text x=\"\(fmt(left + plotW))\" y=\"\(fmt(height - 6))\" text-anchor=\"end\">step \(label(x1))</text>\n"
        // Non-finite values (skipped steps) break the line.
        var run: [(Double, Double)] = []
        func flush() {
            if run.count == 1 { s += "<circle cx=\"\(fmt(run[0].0))\" cy=\"\(fmt(run[0].1))\" r=\"1.5\" fill=\"#1f77b4\" />\n" }
            if run.count > 1 {
                let list = run.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.2\" points=\"\(list)\" />\n"
            }
            run = []
        }
        for p in pts {
            if p.y.isFinite { run.append((px(p.x), py(p.y))) } else { flush() }
        }
        flush()
        return s + "</svg>\n"
    }

    /// At most `maxPoints` points, evenly spaced, always including the last.
    public static func thin(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        guard points.count > maxPoints else { return points }
        let stride = Double(points.count - 1) / Double(maxPoints - 1)
        return (0..<maxPoints).map { points[Int((Double($0) * stride).rounded())] }
    }

    private static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    private static func label(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e7 { return String(Int(v)) }
        return String(format: "%.4g", v)
    }

    /// HTML text escaping.
    /// An XHTML-compatible HTML5 page up to its heading: `title`, and `style` rules after the
    /// shared body rule. Both pages of a run (this one and ResultsPage) start alike.
    static func documentStart(title: String, style: String) -> String {
        """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8" />
        <title>\(escape(title))</title>
        <style>
        body { font-family: sans-serif; margin: 1em; }
        \(style)
        </style>
        </head>
        <body>
        <h1>\(escape(title))</h1>

        """
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
