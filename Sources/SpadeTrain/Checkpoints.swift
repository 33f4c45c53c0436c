import Foundation
import SafeTensors

/// `run_dir/checkpoints/`: `step_<8-digit step>.safetensors` files written atomically,
/// `latest.safetensors` a symlink to the newest, the newest `keep` files kept.
public struct CheckpointDirectory: Sendable {
    /// The checkpoints folder (`<run_dir>/checkpoints`).
    public let directory: String
    /// Step files to keep; 0 keeps all.
    public let keep: Int

    /// File name of the `latest` symlink.
    public static let latestName = "latest.safetensors"

    public init(runDirectory: String, keep: Int) {
        self.directory = runDirectory + "/checkpoints"
        self.keep = keep
    }

    /// `<dir>/step_00000500.safetensors` for step 500.
    public func path(forStep step: Int) -> String {
        directory + "/" + Self.fileName(forStep: step)
    }

    /// `step_00000500.safetensors` for step 500.
    public static func fileName(forStep step: Int) -> String {
        let digits = String(step)
        return "step_" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".safetensors"
    }

    /// The step encoded in a step file's name, nil for any other name.
    public static func step(ofFileName name: String) -> Int? {
        guard name.hasPrefix("step_"), name.hasSuffix(".safetensors") else { return nil }
        let digits = name.dropFirst(5).dropLast(12)
        guard digits.count >= 8, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else { return nil }
        return Int(digits)
    }

    /// Path of the `latest.safetensors` symlink.
    public var latestPath: String { directory + "/" + Self.latestName }

    /// Writes `file` as the checkpoint of `step`, points `latest` at it and rotates; returns its path.
    @discardableResult
    public func save(_ file: SafeTensorsFile, step: Int) throws -> String {
        try save(bytes: file.serialized(), step: step)
    }

    /// Writes serialized checkpoint bytes as step `step` (atomic), updates `latest`, rotates.
    @discardableResult
    public func save(bytes: [UInt8], step: Int) throws -> String {
        try AtomicFile.createDirectory(directory)
        let path = path(forStep: step)
        try AtomicFile.write(bytes, to: path)
        try AtomicFile.symlink(Self.fileName(forStep: step), at: latestPath)
        try rotate()
        return path
    }

    /// Step files present, oldest first.
    public func stepFiles() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name in Self.step(ofFileName: name).map { ($0, directory + "/" + name) } }
            .sorted { $0.step < $1.step }
    }

    /// The step file `latest` points to, if the link exists (whether or not the file does).
    public func latestTarget() -> String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: latestPath) else { return nil }
        return target.hasPrefix("/") ? target : directory + "/" + target
    }

    /// The checkpoint `--resume auto` should load: `latest`'s target if it is complete,
    /// else the newest complete step file; nil when there is none.
    public func latestCheckpoint() -> String? {
        if let target = latestTarget(), Self.isComplete(path: target) { return target }
        for (_, path) in stepFiles().reversed() where Self.isComplete(path: path) { return path }
        return nil
    }

    /// Deletes the oldest step files beyond `keep` (never `latest`'s target) and stale temporary files.
    public func rotate() throws {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        let ours = ".\(getpid())."
        for name in names where name.hasPrefix(AtomicFile.temporaryPrefix) && !name.contains(ours) {
            try? fm.removeItem(atPath: directory + "/" + name)    // left by a killed writer
        }
        guard keep > 0 else { return }
        let files = stepFiles()
        guard files.count > keep else { return }
        let protected = latestTarget().map { ($0 as NSString).standardizingPath }
        var removed = false
        for (_, path) in files.dropLast(keep) where (path as NSString).standardizingPath != protected {
            do { try fm.removeItem(atPath: path) } catch {
                throw FileError(path: path, reason: "cannot delete an old checkpoint: \(error.localizedDescription)")
            }
            removed = true
        }
        if removed { try AtomicFile.syncDirectory(directory) }
    }

    /// Whether `path` is a whole safetensors file: readable, header parses, size = header + data.
    /// Cheap (reads the header only); catches truncated and torn files.
    public static func isComplete(path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let lenBytes = try? handle.read(upToCount: 8), lenBytes.count == 8 else { return false }
        var headerLen: UInt64 = 0
        for (i, b) in lenBytes.enumerated() { headerLen |= UInt64(b) << (8 * UInt64(i)) }
        guard let size = try? handle.seekToEnd(), headerLen <= size - 8, headerLen < 1 << 30 else { return false }
        guard (try? handle.seek(toOffset: 8)) != nil,
              let header = try? handle.read(upToCount: Int(headerLen)), header.count == Int(headerLen),
              let json = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else { return false }
        var end: UInt64 = 0
        for (name, entry) in json where name != "__metadata__" {
            guard let offsets = (entry as? [String: Any])?["data_offsets"] as? [Any], offsets.count == 2,
                  let e = (offsets[1] as? NSNumber)?.uint64Value else { return false }
            end = max(end, e)
        }
        return end == size - 8 - headerLen     // (size - 8 >= headerLen: checked above; no overflow)
    }
}
