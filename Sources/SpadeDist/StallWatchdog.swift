// The stall watchdog: a rank that is alive but makes no progress (stopped, stuck in a hung
// filesystem read, cut off from the network) would leave every other rank waiting in its next
// collective forever. Horovod's stall check is the model: the ranks tell a monitor (rank 0)
// what they are doing, and the monitor names the rank that went quiet.
//
// - Every rank reports its phase and step when they change (`report`), and every few hundred
//   milliseconds while it waits for the others (`waiting`, from each wait loop), as a small
//   non-blocking message to rank 0. Waiting ranks therefore keep talking; the culprit does not.
// - Rank 0, while it waits, reads those messages. When some rank has been silent for
//   `timeoutSeconds`, rank 0 prints one line naming that rank, its host, and the phase and step
//   it was last seen in, and aborts the job `abortGraceSeconds` later. The grace is for a host
//   cut off from the network: OpenMPI's runtime notices a lost host by its OOB keepalive (about
//   8 s as the launchers set it) and ends the job itself; an MPI_Abort sent earlier would make
//   mpirun wait for that host's daemon to acknowledge the kill, with TCP retransmitting for
//   up to 15 minutes (net.ipv4.tcp_retries2) instead.
// - Should rank 0 itself be the silent one, the others give up after twice the timeout (plus
//   the grace and a margin) with a line saying so.
//
// A phase that legitimately takes longer than the timeout without any collective (a huge
// model's forward pass, a checkpoint on a slow disk) looks like a stall: the timeout must
// exceed the longest phase (default 300 s). All MPI calls happen on the thread that
// initialized MPI (thread level FUNNELED), from inside the waits.

import CMPI
import Foundation

/// What a rank is doing, as the watchdog reports it.
public enum RankPhase: Int64, CaseIterable, Sendable, CustomStringConvertible {
    case startingUp, loadingData, forwardBackward, gradientReduction, statusExchange, optimizerUpdate,
         checkpointing, replicaCheck, finishing

    public var description: String {
        switch self {
        case .startingUp: return "starting up"
        case .loadingData: return "loading data"
        case .forwardBackward: return "forward and backward"
        case .gradientReduction: return "gradient reduction"
        case .statusExchange: return "exchanging losses and flags"
        case .optimizerUpdate: return "optimizer update"
        case .checkpointing: return "writing a checkpoint"
        case .replicaCheck: return "replica consistency check"
        case .finishing: return "finishing"
        }
    }
}

final class StallWatchdog {
    let timeoutSeconds: Double
    private let comm: MPI_Comm
    private let rank: Int, size: Int
    private let hosts: [String]
    /// How often a waiting rank says it is still there.
    private let waitingInterval: Double
    /// From naming a stalled rank to MPI_Abort (see the header).
    static let abortGraceSeconds = 10.0
    private var stallReportedAt: Double?

    // This rank's last report.
    private var phase = RankPhase.startingUp
    private var step: Int64 = 0
    private var lastSent = -Double.infinity

    /// Non-root ranks: a ring of send buffers (step, phase) and their requests.
    private var sendBuffers: UnsafeMutablePointer<Int64>
    private var sendRequests: [MPI_Request?]
    private var nextSend = 0
    private static let sendSlots = 16, messageLength = 2

    /// Rank 0: one posted receive per other rank, and what each said last.
    private var receiveBuffers: UnsafeMutablePointer<Int64>
    private var receiveRequests: [MPI_Request?]
    private var lastHeard: [Double]
    private var lastPhase: [RankPhase]
    private var lastStep: [Int64]
    private var lastDrain = -Double.infinity

    /// Collective over `world` (duplicates it: its messages never match anyone else's).
    init(world: MPI_Comm, rank: Int, size: Int, hosts: [String], timeoutSeconds: Double) {
        precondition(timeoutSeconds > 0)
        var dup: MPI_Comm? = nil
        MPI_Comm_dup(world, &dup)
        comm = dup!
        self.rank = rank; self.size = size; self.hosts = hosts
        self.timeoutSeconds = timeoutSeconds
        waitingInterval = min(1, timeoutSeconds / 8)
        sendBuffers = .allocate(capacity: Self.sendSlots * Self.messageLength)
        sendRequests = Array(repeating: cmpi_request_null(), count: Self.sendSlots)
        receiveBuffers = .allocate(capacity: max(size, 1) * Self.messageLength)
        receiveRequests = Array(repeating: cmpi_request_null(), count: size)
        let now = monotonicSeconds()
        lastHeard = Array(repeating: now, count: size)
        lastPhase = Array(repeating: .startingUp, count: size)
        lastStep = Array(repeating: 0, count: size)
        if rank == 0 { for r in 1..<size { postReceive(from: r) } }
    }

    deinit { sendBuffers.deallocate(); receiveBuffers.deallocate() }

    /// This rank entered `phase` of `step`.
    func report(_ phase: RankPhase, step: Int) {
        guard phase != self.phase || Int64(step) != self.step else { return }
        self.phase = phase
        self.step = Int64(step)
        if rank != 0 { send() }
    }

    /// Called over and over while this rank waits for the others, since `start`, in `what`.
    /// Never returns if the wait has become a stall.
    func waiting(in what: @autoclosure () -> String, since start: Double, abort: (String) -> Never) {
        let now = monotonicSeconds()
        if rank != 0 {
            if now - lastSent >= waitingInterval { send() }
            // Rank 0 names the culprit first (it hears everyone); only when rank 0 itself is the
            // silent one does this rank get here.
            if now - start > 2 * timeoutSeconds + Self.abortGraceSeconds + 10 {
                abort("no progress for \(Int(now - start)) s while \(phase) at step \(step), waiting in \(what()); " +
                      "rank 0 on host \(hosts[0]) watches for stalls and did not report one, so rank 0 itself is " +
                      "probably stopped, hung or cut off (stall_timeout_s \(formatSeconds(timeoutSeconds)))")
            }
            return
        }
        if let reported = stallReportedAt {
            if now - reported > Self.abortGraceSeconds { abort("") }   // the line is out already
            return
        }
        guard now - lastDrain >= 0.01 else { return }
        lastDrain = now
        drain(now)
        guard let culprit = (1..<size).max(by: { lastHeard[$0] > lastHeard[$1] }),
              now - lastHeard[culprit] > timeoutSeconds else { return }
        stallReportedAt = now
        printFatalMessageOnce("rank 0: rank \(culprit) on host \(hosts[culprit]) made no progress for \(Int(now - lastHeard[culprit])) s " +
              "(stall_timeout_s \(formatSeconds(timeoutSeconds))): last seen \(lastPhase[culprit]) at step \(lastStep[culprit]); " +
              "it is stopped, hung or cut off from the network (rank 0 was waiting in \(what())); " +
              "ending the job")
    }

    /// Collective, before MPI_Finalize: completes this rank's messages and withdraws rank 0's receives.
    func stop() {
        MPI_Barrier(comm)
        for i in sendRequests.indices where sendRequests[i] != cmpi_request_null() {
            MPI_Wait(&sendRequests[i], cmpi_status_ignore())
        }
        MPI_Barrier(comm)
        if rank == 0 {
            drain(monotonicSeconds())
            for r in 1..<size where receiveRequests[r] != cmpi_request_null() {
                MPI_Cancel(&receiveRequests[r])
                MPI_Wait(&receiveRequests[r], cmpi_status_ignore())
            }
        }
        var c: MPI_Comm? = comm
        MPI_Comm_free(&c)
    }

    private func send() {
        let slot = nextSend
        if sendRequests[slot] != cmpi_request_null() {
            var done: Int32 = 0
            MPI_Test(&sendRequests[slot], &done, cmpi_status_ignore())
            guard done != 0 else { return }   // rank 0 is behind; the next report will do
        }
        nextSend = (nextSend + 1) % Self.sendSlots
        let message = sendBuffers + slot * Self.messageLength
        message[0] = step; message[1] = phase.rawValue
        MPI_Isend(message, Int32(Self.messageLength), cmpi_int64(), 0, 0, comm, &sendRequests[slot])
        lastSent = monotonicSeconds()
    }

    private func postReceive(from r: Int) {
        MPI_Irecv(receiveBuffers + r * Self.messageLength, Int32(Self.messageLength), cmpi_int64(), Int32(r), 0, comm,
                  &receiveRequests[r])
    }

    /// Reads every message that has arrived (several per rank, in order) into the table.
    private func drain(_ now: Double) {
        for r in 1..<size {
            while receiveRequests[r] != cmpi_request_null() {
                var arrived: Int32 = 0
                MPI_Test(&receiveRequests[r], &arrived, cmpi_status_ignore())
                guard arrived != 0 else { break }
                let message = receiveBuffers + r * Self.messageLength
                lastHeard[r] = now
                lastStep[r] = message[0]
                lastPhase[r] = RankPhase(rawValue: message[1]) ?? .startingUp
                postReceive(from: r)
            }
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(format: "%.3g", s)
}
