// Keeping replicas identical: start-up broadcast, config/shape consistency,
// drift checks, and consistent non-finite detection.

import Foundation

/// Copies rank 0's tensors to every rank, in name-sorted order. First checks
/// (one small all-gather) that every rank lists the same names and byte sizes,
/// throwing `DistributedError.inconsistent` naming the first difference.
public func broadcastParameters(_ comm: Communicator,
                                tensors: [(name: String, buffer: UnsafeMutableRawBufferPointer)]) throws {
    let sorted = tensors.sorted { $0.name < $1.name }
    for i in sorted.indices.dropFirst() where sorted[i].name == sorted[i - 1].name {
        preconditionFailure("broadcastParameters: tensor \(sorted[i].name) listed twice")
    }
    if comm.size == 1 { return }
    let listing = sorted.map { "\($0.name) \($0.buffer.count) bytes" }.joined(separator: "\n")
    try checkConsistency(comm, fingerprint: listing, what: "parameter and buffer list")
    for t in sorted where t.buffer.count > 0 {
        comm.broadcast(t.buffer, root: 0)
    }
}

/// Compares a text fingerprint (e.g. the effective config YAML followed by the
/// model's tensor shapes, one per line) across ranks. Throws, identically on
/// every rank, `DistributedError.inconsistent` naming the lowest rank that
/// differs from rank 0 and the first differing line.
public func checkConsistency(_ comm: Communicator, fingerprint: String, what: String) throws {
    if comm.size == 1 { return }
    let all = comm.allGatherStrings(fingerprint)
    if let message = describeFirstDifference(all, what: what) {
        throw DistributedError.inconsistent(message)
    }
}

/// nil if all strings are equal, else a message naming the first rank that
/// differs from rank 0 and the first differing line (1-based).
func describeFirstDifference(_ all: [String], what: String) -> String? {
    guard let r = all.indices.dropFirst().first(where: { all[$0] != all[0] }) else { return nil }
    let a = all[0].split(separator: "\n", omittingEmptySubsequences: false)
    let b = all[r].split(separator: "\n", omittingEmptySubsequences: false)
    var line = 0
    while line < min(a.count, b.count) && a[line] == b[line] { line += 1 }
    func show(_ lines: [Substring]) -> String {
        line < lines.count ? "'\(lines[line])'" : "<end>"
    }
    return "\(what) differs between rank 0 and rank \(r) at line \(line + 1): rank 0 has \(show(a)), rank \(r) has \(show(b))"
}

/// A 64-bit hash of raw bytes (8 bytes at a time, multiply-xorshift mixing;
/// ~5 GB/s). Not cryptographic; equal bytes give equal hashes on every rank.
public func contentHash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
    let words = bytes.count / 8
    var i = 0
    while i < words {
        let w = bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
        h = (h ^ w) &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 32
        i += 1
    }
    for j in (words * 8)..<bytes.count {
        h = (h ^ UInt64(bytes[j])) &* 0xC4CE_B9FE_1A85_EC53
    }
    h ^= h >> 29
    return h
}

/// Compares every tensor's bytes across ranks with one reduction (max of each
/// hash and of its complement, i.e. max and min). Throws, identically on every
/// rank, `DistributedError.replicasDiverged` ("replicas diverged at step N")
/// naming the differing tensors. Call every N steps (config), on all ranks.
public func checkReplicasIdentical(_ comm: Communicator, step: Int,
                                   tensors: [(name: String, buffer: UnsafeRawBufferPointer)]) throws {
    if comm.size == 1 { return }
    let sorted = tensors.sorted { $0.name < $1.name }
    var values = [Int64](repeating: 0, count: 2 * sorted.count)
    for (i, t) in sorted.enumerated() {
        let h = Int64(bitPattern: contentHash(t.buffer))
        values[2 * i] = h
        values[2 * i + 1] = ~h  // max(~h) == ~min(h)
    }
    let reduced = comm.allReduceMax(values)
    var differing: [String] = []
    for (i, t) in sorted.enumerated() where reduced[2 * i] != ~reduced[2 * i + 1] {
        differing.append(t.name)
    }
    if !differing.isEmpty {
        let shown = differing.prefix(5).joined(separator: ", ")
        throw DistributedError.replicasDiverged(
            "replicas diverged at step \(step): \(differing.count) of \(sorted.count) tensors differ across ranks (\(shown)\(differing.count > 5 ? ", ..." : ""))")
    }
}
