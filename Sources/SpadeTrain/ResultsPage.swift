import Foundation

/// The results of `generate --phase` in NVlabs test.py's layout: `<out>/images/<visual>/<name>.png`
/// and an index.html showing, per sample, the input label, the synthesized image and the real image
/// side by side. Big sets are split into pages of `perPage` samples (`index.html`, `index_2.html`,
/// ...) linked to each other. The pages carry no date (NVlabs puts one in a heading), so one
/// set of results always gives the same files.
public struct ResultsPage: Sendable {
    /// The image folders under `images/`: NVlabs test.py's two, and the real image.
    public static let visuals = ["input_label", "synthesized_image", "real_image"]
    /// Samples per page.
    public static let perPage = 100

    /// `images/<visual>/<name>.png`, relative to the output folder.
    public static func imagePath(visual: String, name: String) -> String { "images/\(visual)/\(name).png" }

    /// The file of page p (1-based).
    public static func pageFile(_ p: Int) -> String { p == 1 ? "index.html" : "index_\(p).html" }

    /// Every page for the sample `names` (in dataset order), file name -> HTML.
    public static func pages(title: String, names: [String], width: Int) -> [(file: String, html: String)] {
        let count = max(1, (names.count + perPage - 1) / perPage)
        return (1...count).map { p in
            let first = (p - 1) * perPage
            let slice = names[first..<min(names.count, first + perPage)]
            return (pageFile(p), page(title: title, names: Array(slice), first: first, total: names.count,
                                      page: p, pages: count, width: width))
        }
    }

    static func page(title: String, names: [String], first: Int, total: Int, page p: Int, pages: Int, width: Int) -> String {
        let e = SamplesPage.escape
        var nav = ""
        if pages > 1 {
            nav = "<p class=\"nav\">" + (1...pages).map { q in
                q == p ? "<b>\(q)</b>" : "<a href=\"\(pageFile(q))\">\(q)</a>"
            }.joined(separator: " ") + "</p>\n"
        }
        var h = SamplesPage.documentStart(title: title, style: """
            td { text-align: center; vertical-align: top; padding: 2px 4px; }
            img { width: \(width)px; image-rendering: pixelated; }
            """)
        h += """
            <p>samples \(total == 0 ? 0 : first + 1)-\(first + names.count) of \(total): \(visuals.joined(separator: " | "))</p>

            """
        h += nav + "<table>\n"
        for name in names {
            h += "<tr><th colspan=\"\(visuals.count)\">\(e(name))</th></tr>\n<tr>"
            for v in visuals {
                let src = e(imagePath(visual: v, name: name))
                h += "<td><a href=\"\(src)\"><img src=\"\(src)\" alt=\"\(e(v)) \(e(name))\" loading=\"lazy\" /></a><br />\(v)</td>"
            }
            h += "</tr>\n"
        }
        return h + "</table>\n" + nav + "</body>\n</html>\n"
    }
}
