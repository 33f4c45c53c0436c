/* nfq-delay QUEUE DELAY_US: a constant-delay line on an NFQUEUE, for launch/cluster-sim.sh.
 *
 * Kernels without sch_netem (like the Firecracker VMs this project runs on) cannot delay
 * packets with tc. cluster-sim.sh instead sends every packet arriving at a simulated host to
 * NFQUEUE QUEUE (iptables, in that host's network namespace) and runs this program there:
 * each packet is held DELAY_US microseconds, then accepted. Packets are released in arrival
 * order, so one batch verdict (which accepts every id <= the given one) releases all that
 * are due. SIGTERM/SIGINT: accept whatever is still held and exit.
 *
 * Build: gcc -O2 -o nfq-delay nfq-delay.c -lnetfilter_queue -lnfnetlink
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#define SLOTS (1u << 20) /* packets held at once; beyond that they pass undelayed */

static struct { uint32_t id; uint64_t due; } held[SLOTS];
static unsigned first, end; /* held[first % SLOTS .. end % SLOTS) */
static uint64_t delay_ns;
static volatile sig_atomic_t stopping;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void on_signal(int sig) { (void)sig; stopping = 1; }

static int on_packet(struct nfq_q_handle *q, struct nfgenmsg *msg, struct nfq_data *pkt, void *arg) {
    (void)msg; (void)arg;
    uint32_t id = ntohl(nfq_get_msg_packet_hdr(pkt)->packet_id);
    if (end - first >= SLOTS) return nfq_set_verdict(q, id, NF_ACCEPT, 0, NULL);
    held[end % SLOTS].id = id;
    held[end % SLOTS].due = now_ns() + delay_ns;
    end++;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s QUEUE DELAY_US\n", argv[0]);
        return 2;
    }
    int queue = atoi(argv[1]);
    delay_ns = strtoull(argv[2], NULL, 10) * 1000u;

    struct nfq_handle *h = nfq_open();
    if (!h) { perror("nfq_open"); return 1; }
    struct nfq_q_handle *q = nfq_create_queue(h, (uint16_t)queue, on_packet, NULL);
    if (!q) { perror("nfq_create_queue"); return 1; }
    /* Only metadata: the verdict needs the id, not the payload. */
    if (nfq_set_mode(q, NFQNL_COPY_META, 0) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(q, 1 << 16);
    /* Keep GSO packets whole instead of having the kernel segment them for us. */
    nfq_set_queue_flags(q, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
    nfnl_rcvbufsiz(nfq_nfnlh(h), 64 << 20);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int fd = nfq_fd(h);
    static char buf[1 << 16];
    unsigned long long released = 0, overruns = 0;
    fprintf(stderr, "nfq-delay: queue %d, delay %llu us, ready\n", queue,
            (unsigned long long)(delay_ns / 1000));
    while (!stopping) {
        uint64_t t = now_ns();
        if (first != end && held[first % SLOTS].due <= t) {
            uint32_t last = 0;
            while (first != end && held[first % SLOTS].due <= t) last = held[first++ % SLOTS].id, released++;
            nfq_set_verdict_batch(q, last, NF_ACCEPT);
        }
        /* Sleep until the next packet is due or a new one arrives. */
        struct timespec wait, *timeout = NULL;
        if (first != end) {
            uint64_t due = held[first % SLOTS].due, w = due > t ? due - t : 0;
            wait.tv_sec = (time_t)(w / 1000000000u);
            wait.tv_nsec = (long)(w % 1000000000u);
            timeout = &wait;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (ppoll(&p, 1, timeout, NULL) <= 0) continue;
        for (;;) { /* drain everything queued on the socket */
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) { nfq_handle_packet(h, buf, (int)n); continue; }
            if (n < 0 && errno == ENOBUFS) { overruns++; continue; } /* the kernel dropped messages */
            break;
        }
    }
    if (first != end) nfq_set_verdict_batch(q, held[(end - 1) % SLOTS].id, NF_ACCEPT);
    fprintf(stderr, "nfq-delay: exit, %llu packets delayed, %llu socket overruns\n", released, overruns);
    nfq_destroy_queue(q);
    nfq_close(h);
    return 0;
}
