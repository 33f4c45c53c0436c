import Foundation
import SafeTensors

/// The fixtures copied from ../shared/reference into Tests/Fixtures.
public enum Fixtures {
    /// Absolute path of Tests/Fixtures in this checkout.
    public static let directory: String = {
        // Sources/SpadeTestSupport/Fixtures.swift -> package root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("Tests/Fixtures").path
    }()

    /// Root of the package (for tests that run the built binary).
    public static let packageRoot: String = {
        URL(fileURLWithPath: directory).deletingLastPathComponent().deletingLastPathComponent().path
    }()

    nonisolated(unsafe) private static var cache: [String: SafeTensorsFile] = [:]
    private static let lock = NSLock()

    /// Loads (once) `Tests/Fixtures/<name>.safetensors`.
    public static func load(_ name: String) throws -> SafeTensorsFile {
        lock.lock(); defer { lock.unlock() }
        if let f = cache[name] { return f }
        let f = try SafeTensorsFile.read(path: "\(directory)/\(name).safetensors")
        cache[name] = f
        return f
    }

    /// The `meta` JSON document stored in a fixture's metadata.
    public static func meta(_ name: String) throws -> [String: Any] {
        let f = try load(name)
        guard let s = f.metadata["meta"], let d = s.data(using: .utf8),
              let obj = try JSONSerialization.jsonObject(with: d) as? [String: Any]
        else { return [:] }
        return obj
    }
}

public struct FixtureMissing: Error, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { "fixture tensor '\(name)' not found" }
}

extension SafeTensorsFile {
    /// Float values of a fixture tensor, throwing if it is absent.
    public func f(_ name: String) throws -> [Float] {
        guard let t = tensors[name] else { throw FixtureMissing(name) }
        return t.floats
    }
    public func shape(_ name: String) throws -> [Int] {
        guard let t = tensors[name] else { throw FixtureMissing(name) }
        return t.shape
    }
    public func i64(_ name: String) throws -> [Int64] {
        guard let t = tensors[name] else { throw FixtureMissing(name) }
        return t.int64s
    }
}
