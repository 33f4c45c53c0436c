import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The official Cityscapes and ADE20K trees, listed as NVlabs' data/cityscapes_dataset.py and
// data/ade20k_dataset.py list them (through data/image_folder.py's recursive make_dataset and
// data/pix2pix_dataset.py's natural sort and pairing check).

/// NVlabs' IMG_EXTENSIONS (data/image_folder.py), matched case-sensitively as `str.endswith` does.
private let nvlabsImageExtensions = [".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM",
                                     ".bmp", ".BMP", ".tiff", ".webp"]

/// Every image file (NVlabs' extensions) below `root`, recursively, following symbolic links
/// (os.walk(followlinks=True)), as paths `root/sub/.../name`. Hidden files and folders (names
/// starting with `.`, e.g. macOS `._*` copies) are skipped, where NVlabs would list them. A folder
/// reached twice through links is walked once.
func recursiveImageFiles(_ root: String) -> (files: [String], unreadable: [DataIssue]) {
    var files: [String] = [], issues: [DataIssue] = []
    var visited = Set<[UInt64]>()
    func walk(_ dir: String) {
        var st = stat()
        guard stat(dir, &st) == 0, visited.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else { return }
        guard let handle = opendir(dir) else {
            issues.append(DataIssue(path: dir, problem: "cannot list directory: \(String(cString: strerror(errno)))"))
            return
        }
        defer { closedir(handle) }
        var subdirs: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasPrefix(".") { continue }
            let path = joinPath(dir, name)
            var isDir = Int32(entry.pointee.d_type) == Int32(DT_DIR)
            if Int32(entry.pointee.d_type) == Int32(DT_LNK) || Int32(entry.pointee.d_type) == Int32(DT_UNKNOWN) {
                var target = stat()
                isDir = stat(path, &target) == 0 && (target.st_mode & S_IFMT) == S_IFDIR
            }
            if isDir {
                subdirs.append(path)
            } else if nvlabsImageExtensions.contains(where: { name.hasSuffix($0) }) {
                files.append(path)
            }
        }
        for sub in subdirs { walk(sub) }
    }
    walk(root)
    return (files, issues)
}

/// Sorts like NVlabs' util.natural_sort: the key of a string is its split into runs of decimal
/// digits (compared as integers) and the text between them (compared by code point), so `img2`
/// comes before `img10`. Strings whose keys are equal (`a07`, `a7`), which Python leaves in
/// directory-listing order, are ordered by code point here so that the order is reproducible.
func naturalSorted(_ items: [String]) -> [String] {
    items.map { (NaturalKey($0), $0) }
        .sorted { a, b in
            if a.0 != b.0 { return a.0 < b.0 }
            return a.1.unicodeScalars.lexicographicallyPrecedes(b.1.unicodeScalars) { $0.value < $1.value }
        }
        .map(\.1)
}

/// The key of NVlabs' natural_keys: `re.split('(\d+)', s)` with the digit runs as integers.
struct NaturalKey: Comparable {
    enum Part: Equatable {
        case text([UInt32])
        /// The digits without leading zeros (so equal numbers compare equal, any length).
        case number([UInt8])
    }
    let parts: [Part]

    init(_ s: String) {
        var parts: [Part] = []
        var text: [UInt32] = [], digits: [UInt8] = []
        var inNumber = false
        func flushNumber() {
            parts.append(.number(Array(digits.drop { $0 == 0 })))
            digits = []
        }
        for u in s.unicodeScalars {
            // Python's \d: any Unicode decimal digit (category Nd); ASCII checked first, for speed.
            let digit: UInt8? = u.isASCII ? (u.value >= 48 && u.value <= 57 ? UInt8(u.value - 48) : nil)
                : (u.properties.generalCategory == .decimalNumber ? u.properties.numericValue.map { UInt8($0) } : nil)
            if let digit {
                if !inNumber { parts.append(.text(text)); text = []; inNumber = true }
                digits.append(digit)
            } else {
                if inNumber { flushNumber(); inNumber = false }
                text.append(u.value)
            }
        }
        if inNumber { flushNumber() }
        parts.append(.text(text))
        self.parts = parts
    }

    /// Python list order: element by element, the shorter list first when one is a prefix.
    static func < (a: NaturalKey, b: NaturalKey) -> Bool {
        for (x, y) in zip(a.parts, b.parts) where x != y {
            switch (x, y) {
            case let (.text(p), .text(q)): return p.lexicographicallyPrecedes(q)
            case let (.number(p), .number(q)): return p.count != q.count ? p.count < q.count : p.lexicographicallyPrecedes(q)
            default: return false   // text and numbers alternate: never compared with each other
            }
        }
        return a.parts.count < b.parts.count
    }
}

/// What NVlabs' `paths_match` compares for a file: Cityscapes the first three `_`-separated
/// components of the file name (`aachen_000000_000019`), every other mode the name without
/// its extension.
func pairingKey(_ path: String, mode: String) -> String {
    let name = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
    if mode == "cityscapes" { return name.split(separator: "_", omittingEmptySubsequences: false).prefix(3).joined(separator: "_") }
    guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
    return String(name[..<dot])
}

/// Pairs the naturally sorted label, image (and instance) lists by position, as NVlabs'
/// Pix2pixDataset does, and checks every pair with `pairingKey` unless `no_pairing_check`.
/// A file without its partner is named (not only the first pair that differs, as NVlabs'
/// assertion does); with `no_pairing_check` the lists must still be equally long.
func pairInSortedOrder(labels: [String], images: [String], instances: [String]?, options o: DatasetOptions,
                       labelWhere: String, imageWhere: String, instanceWhere: String?,
                       into listing: inout DatasetListing) {
    let labels = naturalSorted(labels), images = naturalSorted(images)
    let instances = instances.map(naturalSorted)
    var keys: [String: String] = [:]
    for p in labels + images + (instances ?? []) { keys[p] = pairingKey(p, mode: o.datasetMode) }
    let key = { (p: String) in keys[p]! }
    var problems: [DataIssue] = []
    if o.noPairingCheck {
        var partners = [(images, imageWhere)]
        if let instances, let instanceWhere { partners.append((instances, instanceWhere)) }
        for (list, what) in partners where list.count != labels.count {
            problems.append(DataIssue(path: labelWhere, problem: "\(labels.count) label maps but \(list.count) files in \(what) (no_pairing_check pairs them by sorted position, so the counts must be equal)"))
        }
    } else {
        // Files whose name has no partner: as many on both sides (a renamed file) are named in
        // pairs, one line each; otherwise each lonely file is named.
        func checkPartners(_ labels: [String], _ others: [String], what: String, labelWhere: String, otherWhere: String) {
            let labelKeys = Set(labels.map(key)), otherKeys = Set(others.map(key))
            let lonelyLabels = labels.filter { !otherKeys.contains(key($0)) }
            let lonelyOthers = others.filter { !labelKeys.contains(key($0)) }
            if lonelyLabels.count == lonelyOthers.count {
                for (l, other) in zip(lonelyLabels, lonelyOthers) {
                    problems.append(DataIssue(path: l, problem: "has no \(what) named \(key(l)); the \(what) without a label map is \(other) (\(key(other)); no_pairing_check pairs by position)"))
                }
                return
            }
            for l in lonelyLabels { problems.append(DataIssue(path: l, problem: "no \(what) for this label map in \(otherWhere) (\(key(l)))")) }
            for o in lonelyOthers { problems.append(DataIssue(path: o, problem: "no label map for this \(what) in \(labelWhere) (\(key(o)))")) }
        }
        for list in [labels, images] + (instances.map { [$0] } ?? []) {
            var seen: [String: String] = [:]
            for f in list {
                if let first = seen[key(f)] { problems.append(DataIssue(path: f, problem: "pairs under the same name \(key(f)) as \(first)")) }
                seen[key(f)] = f
            }
        }
        checkPartners(labels, images, what: "image", labelWhere: labelWhere, otherWhere: imageWhere)
        if let instances, let instanceWhere {
            checkPartners(labels, instances, what: "instance map", labelWhere: labelWhere, otherWhere: instanceWhere)
        }
        if problems.isEmpty {
            // Same names on both sides, yet the sorted orders may still differ (files of one
            // sample in different sub-folders): NVlabs' own check then fails on the first pair.
            for (i, l) in labels.enumerated() {
                if key(images[i]) != key(l) {
                    problems.append(DataIssue(path: l, problem: "is paired with \(images[i]) by sorted position, but their names differ (set no_pairing_check to pair by position)"))
                    break
                }
                if let instances, key(instances[i]) != key(l) {
                    problems.append(DataIssue(path: l, problem: "is paired with \(instances[i]) by sorted position, but their names differ (set no_pairing_check to pair by position)"))
                    break
                }
            }
        }
    }
    listing.issues += problems
    guard problems.isEmpty else { return }
    listing.files = labels.indices.map { i in
        let image = images[i]
        return SampleFiles(name: ((image as NSString).lastPathComponent as NSString).deletingPathExtension,
                           label: labels[i], image: image, instance: instances?[i])
    }
}

/// `dataset_mode: cityscapes` (data/cityscapes_dataset.py): `gtFine/<p>/**/*_labelIds.png` labels,
/// `*_instanceIds.png` instance maps from the same folder, every image file under `leftImg8bit/<p>`,
/// with p = `val` for phase test and `train` otherwise.
func listCityscapes(_ o: DatasetOptions, into listing: inout DatasetListing) {
    let split = o.splitFolder
    let labelDir = joinPath(joinPath(o.dataroot, "gtFine"), split)
    let imageDir = joinPath(joinPath(o.dataroot, "leftImg8bit"), split)
    var missing = false
    for dir in [labelDir, imageDir] where !isDirectory(dir) {
        listing.issues.append(DataIssue(path: dir, problem: "directory does not exist (dataset_mode cityscapes, phase \(o.phase), dataroot \(o.dataroot))"))
        missing = true
    }
    if missing { return }
    let gt = recursiveImageFiles(labelDir), left = recursiveImageFiles(imageDir)
    listing.issues += gt.unreadable + left.unreadable
    let labels = gt.files.filter { $0.hasSuffix("_labelIds.png") }
    let instances = o.noInstance ? nil : gt.files.filter { $0.hasSuffix("_instanceIds.png") }
    if labels.isEmpty { listing.issues.append(DataIssue(path: labelDir, problem: "no *_labelIds.png label maps")) }
    if left.files.isEmpty { listing.issues.append(DataIssue(path: imageDir, problem: "no images")) }
    if !listing.issues.isEmpty { return }
    pairInSortedOrder(labels: labels, images: left.files, instances: instances, options: o,
                      labelWhere: labelDir, imageWhere: imageDir, instanceWhere: labelDir, into: &listing)
}

/// `dataset_mode: ade20k` (data/ade20k_dataset.py): every `.jpg` (image) and `.png` (label map)
/// below dataroot whose path contains `_train_` (phase train) or `_val_` (phase test), e.g.
/// `images/training/ADE_train_00000001.jpg` and `annotations/training/ADE_train_00000001.png`.
/// NVlabs tests the whole path, dataroot included; here only the part below dataroot counts,
/// so a dataroot such as `/data/my_val_copy` does not change which files are read.
func listADE20K(_ o: DatasetOptions, into listing: inout DatasetListing) {
    guard isDirectory(o.dataroot) else {
        listing.issues.append(DataIssue(path: o.dataroot, problem: "directory does not exist (dataroot, dataset_mode ade20k)"))
        return
    }
    let marker = "_\(o.splitFolder)_"
    let walked = recursiveImageFiles(o.dataroot)
    listing.issues += walked.unreadable
    var images: [String] = [], labels: [String] = []
    let prefix = o.dataroot.hasSuffix("/") ? o.dataroot.count : o.dataroot.count + 1
    for path in walked.files where path.dropFirst(prefix).contains(marker) {
        if path.hasSuffix(".jpg") { images.append(path) } else if path.hasSuffix(".png") { labels.append(path) }
    }
    let expected = o.phase == "test" ? "images/validation/ADE_val_*.jpg" : "images/training/ADE_train_*.jpg"
    if images.isEmpty {
        listing.issues.append(DataIssue(path: o.dataroot, problem: "no .jpg images with '\(marker)' in their path (ADE20K's \(expected))"))
    }
    if labels.isEmpty {
        listing.issues.append(DataIssue(path: o.dataroot, problem: "no .png label maps with '\(marker)' in their path (ADE20K's \(expected.replacingOccurrences(of: "images/", with: "annotations/").replacingOccurrences(of: ".jpg", with: ".png")))"))
    }
    if !listing.issues.isEmpty { return }
    pairInSortedOrder(labels: labels, images: images, instances: nil, options: o,
                      labelWhere: o.dataroot, imageWhere: o.dataroot, instanceWhere: nil, into: &listing)
}

func isDirectory(_ path: String) -> Bool {
    var isDir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
}
