import Foundation
import XCTest
@testable import SpadeTrain

/// `generate --phase`'s index.html: big sets are split into linked pages, every sample on one.
final class ResultsPageTests: XCTestCase {
    func testBigSetsArePagedWithEverySampleOnce() {
        let names = (0..<250).map { "frankfurt_\($0)_leftImg8bit" }
        let pages = ResultsPage.pages(title: "t <&>", names: names, width: 256)
        XCTAssertEqual(pages.map(\.file), ["index.html", "index_2.html", "index_3.html"])
        for name in names {
            let holders = pages.filter { $0.html.contains("<th colspan=\"3\">\(name)</th>") }
            XCTAssertEqual(holders.count, 1, name)
            for v in ResultsPage.visuals {
                XCTAssert(holders.first?.html.contains("src=\"\(ResultsPage.imagePath(visual: v, name: name))\"") ?? false, name)
            }
        }
        XCTAssertEqual(pages.map { $0.html.components(separatedBy: "<th colspan").count - 1 }, [100, 100, 50])
        for page in pages {
            for other in pages where other.file != page.file { XCTAssert(page.html.contains("href=\"\(other.file)\""), page.file) }
            XCTAssert(page.html.contains("<title>t &lt;&amp;&gt;</title>"))
        }
        // One page, no navigation, for small sets.
        let one = ResultsPage.pages(title: "t", names: Array(names.prefix(3)), width: 256)
        XCTAssertEqual(one.map(\.file), ["index.html"])
        XCTAssertFalse(one[0].html.contains("class=\"nav\""))
    }
}
