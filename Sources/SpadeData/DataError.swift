import Foundation

/// An error caused by the user's input (config, data files), not by a bug:
/// the command line prints `message` as is and exits with `exitCode` (2),
/// without a backtrace (DESIGN.md §3).
public protocol UserError: Error, CustomStringConvertible {
    /// One or more lines, each naming the file, key or value at fault.
    var message: String { get }
}

extension UserError {
    /// Exit code of a user error (DESIGN.md §3: usage/config/data error).
    public var exitCode: Int32 { 2 }
    public var description: String { message }
}

/// One problem with one file (or with a config key when `path` names a key).
public struct DataIssue: Sendable, Equatable, CustomStringConvertible {
    /// The file (as configured: dataroot/label_dir joined with the name) or key.
    public var path: String
    /// What is wrong, e.g. `class id 7 >= label_nc 5`.
    public var problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { path.isEmpty ? problem : "\(path): \(problem)" }
}

/// Data errors: one line per bad file (the first `reportLimit`, then a count).
public struct DataError: UserError, Sendable {
    public var issues: [DataIssue]

    public init(_ issues: [DataIssue]) { self.issues = issues }
    public init(path: String, _ problem: String) {
        self.issues = [DataIssue(path: path, problem: problem)]
    }

    /// How many lines a report shows before "... and N more".
    public static let reportLimit = 20

    public var message: String { formatIssues(issues, limit: DataError.reportLimit) }
}

/// The report format of `DataError`: `limit` lines, then `... and N more`.
public func formatIssues(_ issues: [DataIssue], limit: Int = DataError.reportLimit) -> String {
    var lines = issues.prefix(limit).map(\.description)
    if issues.count > limit { lines.append("... and \(issues.count - limit) more") }
    return lines.joined(separator: "\n")
}

/// Merges several issues about the same file into one line (first-seen order).
func mergeIssuesPerFile(_ issues: [DataIssue]) -> [DataIssue] {
    var order: [String] = []
    var problems: [String: [String]] = [:]
    for issue in issues {
        if problems[issue.path] == nil { order.append(issue.path) }
        if !(problems[issue.path]?.contains(issue.problem) ?? false) {
            problems[issue.path, default: []].append(issue.problem)
        }
    }
    return order.map { DataIssue(path: $0, problem: problems[$0]!.joined(separator: "; ")) }
}
