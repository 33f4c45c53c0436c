// How gradients and parameters cross nodes in the hierarchical reduction (ZeRO-1 across nodes).
//
// Within a node, `SharedMemoryGradientReducer` gives each local rank r a shard of every bucket
// and forms the node's sum of it. Across nodes the ranks with local rank r (one per node, the
// `crossNode` communicator) own that shard together: it is cut into one piece per node, and
// - reduce-scatter: every node sends piece n of its node sum to node n (one MPI_Ialltoallv per
//   bucket, started in bucket order and overlapped with backward); node n adds the nodes'
//   pieces in node order in float32, so the world's sum of piece n has the same bits whatever
//   MPI's algorithms and whichever node computes it;
// - the optimizer updates each piece on its node only (parameters and Adam moments sharded
//   over every rank of the job);
// - all-gather: the updated pieces go back to every node (one in-place MPI_Iallgatherv per
//   bucket), so each node again holds one whole copy of the parameters.
// Per step each rank sends and receives (nodes - 1) / nodes of its shard twice, what a ring
// all-reduce moves, but Adam runs on 1 / world of the state instead of 1 / ranks-per-node.
//
// `gradient_dtype: bfloat16` sends the gradient pieces as bfloat16 (half the reduce-scatter's
// bytes); every node's piece, its own included, is rounded alike, and the sums stay float32.
// Parameters always travel as float32: the replicas must stay bitwise identical.

import CKernels
import Foundation

/// How gradients travel between nodes.
public enum GradientWireType: String, Sendable, CaseIterable {
    case float32, bfloat16
    var bytes: Int { self == .float32 ? 4 : 2 }
}

final class CrossNodeExchange {
    /// One bucket's shard on this local rank: its float range, cut into one piece per node.
    struct Shard {
        let pieces: [Range<Int>]
        var range: Range<Int> { pieces.first!.lowerBound..<pieces.last!.upperBound }
    }

    let comm: Communicator
    let wire: GradientWireType
    let shards: [Shard]
    private var node: Int { comm.rank }
    private var nodes: Int { comm.size }
    /// Per bucket: the shard in wire format (bfloat16 only), and the other nodes' pieces of this
    /// node's piece, received (slot n for node n; this node's slot unused).
    private let outgoing: [UnsafeMutableRawPointer?]
    private let incoming: [UnsafeMutableRawPointer]
    private var inFlight: [PendingReduction?]

    /// `shards[b]`: this local rank's float range of bucket b (the same ranges on every node).
    init(communicator: Communicator, shards ranges: [Range<Int>], wire: GradientWireType) {
        comm = communicator
        self.wire = wire
        let nodes = communicator.size
        shards = ranges.map { range in
            // 16-float-aligned pieces (cache lines, vector loops); the last nodes' possibly empty.
            let chunk = ((range.count + nodes - 1) / nodes + 15) / 16 * 16
            return Shard(pieces: (0..<nodes).map { n in
                let lo = range.lowerBound + min(n * chunk, range.count)
                return lo..<(range.lowerBound + min(n * chunk + chunk, range.count))
            })
        }
        let node = communicator.rank
        outgoing = shards.map { wire == .float32 ? nil : .allocate(byteCount: max($0.range.count, 1) * 2, alignment: 64) }
        incoming = shards.map { .allocate(byteCount: max($0.pieces[node].count * nodes, 1) * wire.bytes, alignment: 64) }
        inFlight = Array(repeating: nil, count: shards.count)
    }

    deinit {
        precondition(inFlight.allSatisfy { $0 == nil }, "a cross-node exchange was dropped in flight")
        for p in outgoing { p?.deallocate() }
        for p in incoming { p.deallocate() }
    }

    /// The piece of bucket b this node owns: summed here, updated here.
    func ownedPiece(_ b: Int) -> Range<Int> { shards[b].pieces[node] }

    /// Starts bucket b's reduce-scatter; `store` holds the node's sum of the shard (float offsets
    /// as in the gradient store) and must stay untouched until `finishSum`.
    func startSum(_ b: Int, store: UnsafeMutablePointer<Float>) {
        precondition(inFlight[b] == nil, "bucket \(b)'s exchange started twice")
        let shard = shards[b], range = shard.range, w = wire.bytes
        let send: UnsafeRawPointer
        if let out = outgoing[b] {
            spade_float_to_bfloat16(store + range.lowerBound, out.assumingMemoryBound(to: UInt16.self), range.count)
            send = UnsafeRawPointer(out)
        } else {
            send = UnsafeRawPointer(store + range.lowerBound)
        }
        // Nothing to or from this node itself: its own piece is read in place.
        let mine = shard.pieces[node].count
        let sendCounts = shard.pieces.enumerated().map { $0.offset == node ? 0 : $0.element.count * w }
        let sendOffsets = shard.pieces.map { ($0.lowerBound - range.lowerBound) * w }
        let recvCounts = (0..<nodes).map { $0 == node ? 0 : mine * w }
        let recvOffsets = (0..<nodes).map { $0 * mine * w }
        inFlight[b] = comm.startAllToAll(send: send, sendCounts: sendCounts, sendOffsets: sendOffsets,
                                         recv: incoming[b], recvCounts: recvCounts, recvOffsets: recvOffsets)
    }

    /// Progresses bucket b's reduce-scatter; true once it has arrived.
    func test(_ b: Int) -> Bool { inFlight[b]?.test() ?? true }

    /// Waits for bucket b's pieces and writes the world's sum of this node's piece into `store`.
    func finishSum(_ b: Int, store: UnsafeMutablePointer<Float>) {
        guard let pending = inFlight[b] else { preconditionFailure("bucket \(b)'s sum finished before it started") }
        pending.wait()   // watched by the stall watchdog
        inFlight[b] = nil
        let shard = shards[b], piece = shard.pieces[node], w = wire.bytes
        if piece.isEmpty { return }
        let received = incoming[b]
        if let out = outgoing[b] {
            let own = UnsafePointer((out + (piece.lowerBound - shard.range.lowerBound) * w).assumingMemoryBound(to: UInt16.self))
            let parts: [UnsafePointer<UInt16>?] = (0..<nodes).map { n in
                n == node ? own : UnsafePointer((received + n * piece.count * w).assumingMemoryBound(to: UInt16.self))
            }
            parts.withUnsafeBufferPointer { spade_sum_bfloat16_into(store + piece.lowerBound, $0.baseAddress!, nodes, piece.count) }
        } else {
            let parts: [UnsafePointer<Float>?] = (0..<nodes).map { n in
                n == node ? UnsafePointer(store + piece.lowerBound)
                    : UnsafePointer((received + n * piece.count * w).assumingMemoryBound(to: Float.self))
            }
            parts.withUnsafeBufferPointer { spade_sum_into(store + piece.lowerBound, $0.baseAddress!, nodes, piece.count) }
        }
    }

    /// Starts sending this node's pieces of `values` (parameters after the update, or Adam's
    /// moments for a checkpoint) to every node; each bucket's shard is whole everywhere once the
    /// returned reductions complete.
    func startGather(_ values: UnsafeMutablePointer<Float>) -> [PendingReduction] {
        shards.map { shard in
            let base = UnsafeMutableRawPointer(values + shard.range.lowerBound)
            return comm.startAllGatherInPlace(base, counts: shard.pieces.map { $0.count * 4 },
                                              offsets: shard.pieces.map { ($0.lowerBound - shard.range.lowerBound) * 4 })
        }
    }
}
