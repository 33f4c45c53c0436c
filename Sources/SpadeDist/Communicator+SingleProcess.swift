// The same protocol for one process without MPI: reductions are identity.

import Foundation

/// A world of one rank; every collective returns its input.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var localRank: Int { 0 }
    public var localSize: Int { 1 }

    public func barrier() {}
    public func broadcast(_ buf: UnsafeMutableRawBufferPointer, root: Int) { precondition(root == 0) }
    public func allReduceSum(_ buf: UnsafeMutableBufferPointer<Float>) {}
    public func allReduceSum(_ buf: UnsafeMutableBufferPointer<Double>) {}
    public func allReduceMax(_ buf: UnsafeMutableBufferPointer<Int64>) {}
    public func allReduceMin(_ buf: UnsafeMutableBufferPointer<Int64>) {}
    public func allReduceMax(_ buf: UnsafeMutableBufferPointer<Double>) {}
    public func allReduceMin(_ buf: UnsafeMutableBufferPointer<Double>) {}
    public func allGather(_ send: UnsafeRawBufferPointer, into recv: UnsafeMutableRawBufferPointer) {
        precondition(recv.count == send.count, "allGather: receive buffer must hold size * send.count bytes")
        if send.count > 0 { recv.baseAddress!.copyMemory(from: send.baseAddress!, byteCount: send.count) }
    }
    public func startAllGather(_ send: UnsafeRawBufferPointer, into recv: UnsafeMutableRawBufferPointer) -> PendingReduction {
        allGather(send, into: recv)
        return CompletedReduction()
    }
    public func allGatherStrings(_ s: String) -> [String] { [s] }
    public func startAllReduceSum(_ buf: UnsafeMutableBufferPointer<Float>) -> PendingReduction {
        CompletedReduction()
    }
    public func startAllToAll(send: UnsafeRawPointer, sendCounts: [Int], sendOffsets: [Int],
                              recv: UnsafeMutableRawPointer, recvCounts: [Int], recvOffsets: [Int]) -> PendingReduction {
        precondition(sendCounts == recvCounts, "startAllToAll: one rank sends what it receives")
        if sendCounts[0] > 0 { (recv + recvOffsets[0]).copyMemory(from: send + sendOffsets[0], byteCount: sendCounts[0]) }
        return CompletedReduction()
    }
    public func startAllGatherInPlace(_ buffer: UnsafeMutableRawPointer, counts: [Int], offsets: [Int]) -> PendingReduction {
        CompletedReduction()
    }
    public func allocateNodeShared(bytes: Int) -> NodeSharedMemory? { nil }
    public func duplicate() -> Communicator { SingleProcessCommunicator() }
    public func splitByNode() -> (node: Communicator, crossNode: Communicator)? { nil }
    public func startStallWatchdog(timeoutSeconds: Double) {}
    public func reportProgress(_ phase: RankPhase, step: Int) {}
    public func stillWaiting(for what: @autoclosure () -> String, since start: Double) {}
    public func abort(message: String, code: Int32) -> Never {
        if !message.isEmpty { printFatalMessageOnce("rank 0: \(message)") }
        exit(code)
    }
    public func finalize() {}
}

/// A reduction that completed when it was started.
final class CompletedReduction: PendingReduction {
    func test() -> Bool { true }
    func wait() {}
}

/// Writes `line` to stderr the first time it is called in this process; later calls are ignored,
/// so a failure inside the abort path cannot print a second, confusing message.
func printFatalMessageOnce(_ line: String) {
    fatalMessageLock.lock()
    defer { fatalMessageLock.unlock() }
    if fatalMessagePrinted { return }
    fatalMessagePrinted = true
    FileHandle.standardError.write(Data((line.hasSuffix("\n") ? line : line + "\n").utf8))
}
nonisolated(unsafe) private var fatalMessagePrinted = false
private let fatalMessageLock = NSLock()
