import Foundation
import SpadeCore

/// Checks a whole dataset before training: the options, the listing
/// (directories exist and are non-empty, every label has its image and
/// instance map), and every sample with `index % worldSize == rank` (files
/// readable and not corrupt, label/image/instance of the same size, label
/// values < label_nc or don't-care, sizes compatible with preprocess_mode),
/// and that there are at least `globalBatch` samples. Returns one issue per
/// bad file (empty = fine). Ranks can split the scan and concatenate their
/// issues (rank 0 alone also reports the dataset-level issues).
public func prescan(_ options: DatasetOptions, globalBatch: Int = 1, rank: Int = 0, worldSize: Int = 1,
                    threads: Int = 1) -> [DataIssue] {
    do { try options.validate() } catch let e as DataError { return mergeIssuesPerFile(e.issues) } catch { return [DataIssue(path: "", problem: "\(error)")] }
    let listing = listDataset(options)
    var issues = rank == 0 ? listing.issues : []
    let dataset = Dataset(options: options, listing: listing)
    let n = dataset.count
    if rank == 0 && listing.issues.isEmpty {
        if n == 0 {
            issues.append(DataIssue(path: options.dataroot, problem: "the dataset is empty"))
        } else if n < globalBatch {
            issues.append(DataIssue(path: options.datasetMode == "synthetic" ? "synthetic_count" : options.dataroot,
                                    problem: "\(n) samples cannot fill one global batch of \(globalBatch) (batchSize x ranks)"))
        }
    }
    let mine = Array(stride(from: rank, to: n, by: max(1, worldSize)))
    var perSample = [[DataIssue]](repeating: [], count: mine.count)
    let workers = max(1, min(threads, mine.count))
    let lock = NSLock()
    if mine.count > 0 {
        let results = UnsafeMutableBufferPointerBox(count: mine.count)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var k = w
            while k < mine.count {
                let r = checkSample(dataset, mine[k])
                lock.lock(); results.values[k] = r; lock.unlock()
                k += workers
            }
        }
        perSample = results.values
    }
    for r in perSample { issues.append(contentsOf: r) }
    return mergeIssuesPerFile(issues)
}

/// Throws a DataError (one line per bad file, first 20, then a count) if
/// `prescan` finds anything.
public func validateDataset(_ options: DatasetOptions, globalBatch: Int = 1, threads: Int = 1) throws {
    let issues = prescan(options, globalBatch: globalBatch, threads: threads)
    if !issues.isEmpty { throw DataError(issues) }
}

private final class UnsafeMutableBufferPointerBox: @unchecked Sendable {
    var values: [[DataIssue]]
    init(count: Int) { values = [[DataIssue]](repeating: [], count: count) }
}

/// Every problem of sample i (decodes all of its files).
func checkSample(_ d: Dataset, _ i: Int) -> [DataIssue] {
    let o = d.options
    if d.scenes != nil {
        // Generated data: only the geometry can be wrong (checked once per size).
        var rng = SplitMix64(seed: 0)
        do { _ = try planGeometry(width: d.scenes!.width, height: d.scenes!.height, options: o, rng: &rng) } catch let e as GeometryProblem {
            return i == 0 ? [DataIssue(path: "synthetic_size", problem: e.message)] : []
        } catch {}
        return []
    }
    let f = d.files[i]
    var issues: [DataIssue] = []
    func record(_ e: Error, _ path: String) {
        if let de = e as? DataError { issues.append(contentsOf: de.issues) }
        else { issues.append(DataIssue(path: path, problem: "\(e)")) }
    }
    var labelSize: (Int, Int)? = nil
    do {
        let img = try readImage(path: f.label)
        labelSize = (img.width, img.height)
        let values = try d.labelValues(img, path: f.label)
        if let p = labelProblem(values, labelNC: o.labelNC, containDontcare: o.containDontcareLabel) {
            issues.append(DataIssue(path: f.label, problem: p))
        }
    } catch { record(error, f.label) }
    var others = [(f.image, "image")]
    if let ip = f.instance, !o.noInstance { others.append((ip, "instance map")) }
    for (path, _) in others {
        do {
            let img = try readImage(path: path)
            if let (lw, lh) = labelSize, img.width != lw || img.height != lh {
                issues.append(DataIssue(path: path, problem: "size \(img.width)x\(img.height) differs from its label \(f.label) (\(lw)x\(lh))"))
            }
        } catch { record(error, path) }
    }
    if let (w, h) = labelSize {
        var rng = SplitMix64(seed: 0)
        do { _ = try planGeometry(width: w, height: h, options: o, rng: &rng) } catch let e as GeometryProblem {
            issues.append(DataIssue(path: f.image, problem: e.message))
        } catch {}
    }
    return issues
}
