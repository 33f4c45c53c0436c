import SpadeData
import SpadeDist

// One error vocabulary for the whole program: `ExitCodeError` (SpadeDist) carries the
// exit code; errors the user can fix (config, data, checkpoint files) use 2 (DESIGN §3).

/// Data errors (SpadeData cannot see SpadeDist) are user errors too.
extension DataError: ExitCodeError {}

/// A config problem: unknown key, wrong type, out-of-range value or inconsistent keys.
/// `description` is one line naming the source (file or `--set`), the key and the value.
public struct ConfigError: ExitCodeError, Equatable, Sendable {
    public var exitCode: Int32 { 2 }
    /// Every rank parses the same files and arguments, so every rank finds the same error.
    public var sameOnAllRanks: Bool { true }
    /// Where the value came from: a YAML path, `--set`, or nil for the effective config.
    public var source: String?
    /// The key at fault, when there is one.
    public var key: String?
    /// What is wrong, without the source prefix.
    public var message: String

    public init(source: String? = nil, key: String? = nil, _ message: String) {
        self.source = source
        self.key = key
        self.message = message
    }

    public var description: String {
        let body = key.map { "key '\($0)': \(message)" } ?? message
        return source.map { "\($0): \(body)" } ?? body
    }
}
