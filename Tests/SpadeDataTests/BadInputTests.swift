import Foundation
import XCTest
@testable import SpadeData

/// A corpus of bad inputs: each is caught by the pre-scan (exit code 2) with
/// a message naming the file.
final class BadInputTests: XCTestCase {
    /// A valid 3-sample custom dataset (16x16, label_nc 5) to break.
    func validDataset() throws -> String {
        let dir = try makeTempDir(self)
        try writeSyntheticDataset(to: dir, count: 3, size: 16, classes: 5, seed: 2, instances: false)
        return dir
    }

    func assertOneIssue(_ o: DatasetOptions, path: String, contains text: String, globalBatch: Int = 1,
                        file: StaticString = #filePath, line: UInt = #line) {
        let issues = prescan(o, globalBatch: globalBatch)
        XCTAssertEqual(issues.count, 1, "\(issues)", file: file, line: line)
        guard let issue = issues.first else { return }
        XCTAssertEqual(issue.path, path, file: file, line: line)
        XCTAssertTrue(issue.problem.contains(text), "\(issue)", file: file, line: line)
        // validateDataset throws the same report as a user error (exit 2).
        XCTAssertThrowsError(try validateDataset(o, globalBatch: globalBatch), file: file, line: line) { e in
            guard let de = e as? DataError else { return XCTFail("not a DataError: \(e)", file: file, line: line) }
            XCTAssertEqual(de.exitCode, 2, file: file, line: line)
            XCTAssertEqual(de.message, issue.description, file: file, line: line)
            XCTAssertTrue(de.message.hasPrefix(path + ": "), file: file, line: line)
        }
    }

    func testValidDatasetHasNoIssues() throws {
        let dir = try validDataset()
        XCTAssertEqual(prescan(customOptions(dir, labelNC: 5, size: 16), globalBatch: 3), [])
    }

    func testTruncatedPNG() throws {
        let dir = try validDataset()
        let p = "\(dir)/train_img/00001.png"
        let bytes = try readFileBytes(path: p)
        try writeBytes(p, Array(bytes.prefix(bytes.count - 30)))
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: p, contains: "corrupt PNG")
    }

    func testGarbageJPEG() throws {
        let dir = try validDataset()
        try FileManager.default.removeItem(atPath: "\(dir)/train_img/00002.png")
        let p = "\(dir)/train_img/00002.jpg"
        try writeBytes(p, [0xFF, 0xD8, 0xFF, 0xDB] + (0..<400).map { UInt8(($0 * 31) % 256) })
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: p, contains: "corrupt JPEG")
    }

    func testMismatchedSizes() throws {
        let dir = try validDataset()
        let p = "\(dir)/train_img/00000.png"
        try writePNG(path: p, width: 16, height: 12, channels: 3, pixels: [UInt8](repeating: 9, count: 16 * 12 * 3))
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: p, contains: "size 16x12 differs from its label")
    }

    func testClassIdOutOfRange() throws {
        let dir = try validDataset()
        let p = "\(dir)/train_label/00001.png"
        var px = [UInt8](repeating: 0, count: 256)
        px[17] = 7; px[18] = 7
        try writePNG(path: p, width: 16, height: 16, channels: 1, pixels: px)
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: p, contains: "class id 7 >= label_nc 5")
    }

    func testDontcareWithoutContainDontcareLabel() throws {
        let dir = try validDataset()
        let p = "\(dir)/train_label/00002.png"
        var px = [UInt8](repeating: 1, count: 256)
        px[0] = 255
        try writePNG(path: p, width: 16, height: 16, channels: 1, pixels: px)
        var o = customOptions(dir, labelNC: 5, size: 16)
        assertOneIssue(o, path: p, contains: "255 (don't-care)")
        o.containDontcareLabel = true
        XCTAssertEqual(prescan(o), [])
    }

    func testMissingPartner() throws {
        let dir = try validDataset()
        try FileManager.default.removeItem(atPath: "\(dir)/train_img/00001.png")
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: "\(dir)/train_label/00001.png", contains: "no image with the same name")
        let dir2 = try validDataset()
        try FileManager.default.removeItem(atPath: "\(dir2)/train_label/00000.png")
        assertOneIssue(customOptions(dir2, labelNC: 5, size: 16), path: "\(dir2)/train_img/00000.png", contains: "no label with the same name")
    }

    func testMissingInstanceMap() throws {
        let dir = try makeTempDir(self)
        try writeSyntheticDataset(to: dir, count: 2, size: 16, classes: 5, seed: 2, instances: true)
        try FileManager.default.removeItem(atPath: "\(dir)/train_inst/00001.png")
        var o = customOptions(dir, labelNC: 5, size: 16)
        o.noInstance = false
        assertOneIssue(o, path: "\(dir)/train_label/00001.png", contains: "no instance map")
    }

    func testEmptyDirectory() throws {
        let dir = try makeTempDir(self)
        try mkdir("\(dir)/train_label"); try mkdir("\(dir)/train_img")
        let issues = prescan(customOptions(dir, labelNC: 5, size: 16))
        XCTAssertEqual(issues.map(\.path), ["\(dir)/train_label", "\(dir)/train_img"])
        XCTAssertTrue(issues[0].problem.contains("no PNG or JPEG files (label_dir)"), "\(issues)")
        XCTAssertThrowsError(try Dataset(options: customOptions(dir, labelNC: 5, size: 16)))
    }

    func testDirectoryDoesNotExist() throws {
        let dir = try makeTempDir(self) + "/nope"
        let issues = prescan(customOptions(dir, labelNC: 5, size: 16))
        XCTAssertEqual(issues.count, 2)
        XCTAssertEqual(issues[0].description, "\(dir)/train_label: directory does not exist (label_dir)")
        var t = DatasetOptions()
        t.datasetMode = "classified_tiles"
        t.dataroot = dir
        assertOneIssue(t, path: dir, contains: "directory does not exist (dataroot)")
    }

    func testUnreadableFile() throws {
        let dir = try validDataset()
        // A directory where an image should be: unreadable for everyone, root included.
        let d = "\(dir)/train_img/00002.png"
        try FileManager.default.removeItem(atPath: d)
        try mkdir(d)
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: d, contains: "is a directory, not an image file")
        try FileManager.default.removeItem(atPath: d)
        try writePNG(path: d, width: 16, height: 16, channels: 3, pixels: [UInt8](repeating: 1, count: 768))
        // Root reads files without permission: the chmod case only runs for a normal user.
        guard getuid() != 0 else { return }
        let p = "\(dir)/train_label/00000.png"
        chmod(p, 0)
        addTeardownBlock { chmod(p, 0o644) }
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: p, contains: "cannot read: Permission denied")
    }

    func testNotEnoughSamplesForOneGlobalBatch() throws {
        let dir = try validDataset()
        assertOneIssue(customOptions(dir, labelNC: 5, size: 16), path: dir, contains: "3 samples cannot fill one global batch of 4", globalBatch: 4)
    }

    func testUnknownKeysValuesAreNamed() {
        var o = DatasetOptions()
        o.preprocessMode = "zoom"
        o.labelNC = 0
        let issues = prescan(o)
        XCTAssertEqual(issues.map(\.path), ["preprocess_mode", "label_nc"])
    }

    func testReportListsTwentyThenCount() throws {
        let dir = try makeTempDir(self)
        try writeSyntheticDataset(to: dir, count: 25, size: 8, classes: 8, seed: 2, instances: false)
        let issues = prescan(customOptions(dir, labelNC: 2, size: 8), threads: 2)
        XCTAssertEqual(issues.count, 25)
        let msg = DataError(issues).message.split(separator: "\n")
        XCTAssertEqual(msg.count, 21)
        XCTAssertEqual(msg.last, "... and 5 more")
        XCTAssertTrue(msg[0].hasPrefix("\(dir)/train_label/00000.png: class id"))
    }

    func testRanksSplitThePrescan() throws {
        let dir = try makeTempDir(self)
        try writeSyntheticDataset(to: dir, count: 6, size: 8, classes: 8, seed: 2, instances: false)
        let o = customOptions(dir, labelNC: 2, size: 8)
        let all = prescan(o)
        let split = (0..<3).flatMap { prescan(o, rank: $0, worldSize: 3) }
        XCTAssertEqual(Set(all.map(\.path)), Set(split.map(\.path)))
        XCTAssertEqual(all.count, split.count)
    }

    func testDecodeErrorInLoaderIsThrownFromNext() throws {
        let dir = try validDataset()
        let o = customOptions(dir, labelNC: 5, size: 16)
        let ds = try Dataset(options: o)
        try writeBytes("\(dir)/train_img/00001.png", [1, 2, 3])  // broken after the listing
        let loader = PrefetchingLoader(dataset: ds, sampler: ShardedSampler(count: 3, globalBatch: 1, rank: 0, worldSize: 1, seed: 0, serial: true))
        XCTAssertNoThrow(try loader.next())
        XCTAssertThrowsError(try loader.next()) { e in
            XCTAssertTrue("\(e)".contains("train_img/00001.png: not a PNG or JPEG"), "\(e)")
        }
        XCTAssertThrowsError(try loader.next())  // stays failed
    }
}
