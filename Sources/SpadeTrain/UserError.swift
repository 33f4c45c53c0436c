/// An error caused by the user's input (command line, config, data): the CLI prints
/// its one-line `description` without a backtrace and exits with `exitCode` (2).
public protocol UserError: Error, CustomStringConvertible {
    /// Process exit code for this error (DESIGN §3: 2 for usage/config/data errors).
    var exitCode: Int32 { get }
}

extension UserError {
    public var exitCode: Int32 { 2 }
}

/// A config problem: unknown key, wrong type, out-of-range value or inconsistent keys.
/// `description` is one line naming the source (file or `--set`), the key and the value.
public struct ConfigError: UserError, Equatable, Sendable {
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
