#if canImport(Glibc)
import Glibc
private let cWrite = Glibc.write
private let cSymlink = Glibc.symlink
#elseif canImport(Darwin)
import Darwin
private let cWrite = Darwin.write
private let cSymlink = Darwin.symlink
#endif
import Foundation

/// A file-system operation failed (a runtime failure: exit code 1, not a user error).
public struct FileError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(path): \(reason)" }

    /// The error for the failing call `what` with the current `errno`.
    static func posix(_ path: String, _ what: String) -> FileError {
        FileError(path: path, reason: "\(what) failed: \(String(cString: strerror(errno)))")
    }
}

/// Crash-safe whole-file writes: a reader sees the old file or the new one, never a torn one.
public enum AtomicFile {
    /// Prefix of the temporary files `write` creates next to their target.
    public static let temporaryPrefix = ".tmp-"

    /// Writes `bytes` to `path` via a temp file in the same directory, fsync, rename, fsync of the directory.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        let dir = directory(of: path)
        let base = (path as NSString).lastPathComponent
        let temp = dir + "/" + temporaryPrefix + base + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        // Errors name `path` (what the user knows), not the temporary file, which is removed.
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError.posix(path, "creating a temporary file next to it") }
        var ok = false
        defer { if !ok { unlink(temp) } }
        do {
            defer { close(fd) }
            try writeAll(fd, bytes, path: path)
            guard fsync(fd) == 0 else { throw FileError.posix(path, "fsync") }
        }
        guard rename(temp, path) == 0 else { throw FileError.posix(path, "rename from \(temp)") }
        ok = true
        try syncDirectory(dir)
    }

    /// Writes UTF-8 text atomically.
    public static func write(_ text: String, to path: String) throws {
        try write(Array(text.utf8), to: path)
    }

    /// Points the symlink `link` at `target` atomically (temp symlink + rename), then fsyncs the directory.
    public static func symlink(_ target: String, at link: String) throws {
        let dir = directory(of: link)
        let temp = dir + "/" + temporaryPrefix + (link as NSString).lastPathComponent + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        guard cSymlink(target, temp) == 0 else { throw FileError.posix(temp, "symlink") }
        guard rename(temp, link) == 0 else {
            let e = FileError.posix(link, "rename from \(temp)")
            unlink(temp)
            throw e
        }
        try syncDirectory(dir)
    }

    /// fsync of a directory, so a rename or unlink in it is durable.
    public static func syncDirectory(_ dir: String) throws {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError.posix(dir, "opening the directory") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw FileError.posix(dir, "fsync of the directory") }
    }

    /// Creates `dir` and its parents if missing (errors with the system's reason, e.g. a read-only file system).
    public static func createDirectory(_ dir: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw FileError(path: dir, reason: "exists and is not a directory") }
            return
        }
        let parent = directory(of: dir)
        if parent != dir && parent != "/" { try createDirectory(parent) }
        guard mkdir(dir, 0o755) == 0 || errno == EEXIST else { throw FileError.posix(dir, "creating the directory") }
    }

    /// Appends `bytes` to the file open at `fd` (O_APPEND) whole or not at all: a failed write
    /// (e.g. a full disk) is cut off again, so the file never ends in a torn record.
    public static func append(_ bytes: [UInt8], to fd: Int32, path: String) throws {
        let end = lseek(fd, 0, SEEK_END)
        do { try writeAll(fd, bytes, path: path) } catch {
            if end >= 0 { _ = ftruncate(fd, end) }
            throw error
        }
    }

    static func directory(of path: String) -> String {
        let d = (path as NSString).deletingLastPathComponent
        return d.isEmpty ? "." : d
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = cWrite(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileError.posix(path, "write")
                }
                done += n
            }
        }
    }
}
