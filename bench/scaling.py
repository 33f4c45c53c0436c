#!/usr/bin/env python3
"""Scaling model of spade-dist across nodes (docs/scaling.md).

A step is the node's compute plus the part of the gradient traffic that backward does not hide.
S = 4 bytes x parameters of G and D, N nodes, per-host link rate B with efficiency e (the share
of the wire rate a transfer gets through TCP), w = 2 for bfloat16 gradients on the wire, else 4.

  hierarchical (gradient_transport auto; ZeRO-1 across nodes): each host sends (N-1)/N of the
  gradients in the reduce-scatter, overlapped with backward, and (N-1)/N of the parameters in
  the all-gather after the update, never hidden:
    t_rs = (N-1)/N x S x w/4 / (e B) + (N-1) x latency x buckets
    t_ag = (N-1)/N x S / (e B) + (N-1) x latency             (all buckets issued at once)
    t_step = t_compute + (1 - hidden_hier) x t_rs + t_ag
  flat (gradient_transport mpi): OpenMPI's all-reduce of S, measured alone (t_allreduce):
    t_step = t_compute + (1 - hidden_flat) x t_allreduce

The two paths hide different shares of their reduction behind backward: OpenMPI moves a
non-blocking collective only inside our polls, so a multi-round all-reduce (recursive halving)
advances one round per poll, while the reduce-scatter is a single all-to-all round.

Calibration (bench/cluster.sh, no training): spade-dist-commcheck all-reduces S in 4 MiB buckets
over 3 and over 2 hosts at each link setting. Over 2 hosts that is one exchange of S/2 each way,
so it gives e; over 3 hosts it is t_allreduce of the flat path. `hidden_flat` and `hidden_hier`
are fitted once each, on 3 hosts x 1 rank at 1 Gbit/s + 1 ms; every other layout and link
validates the model.

Measured exposure: comm_wait_s (the waits for gradients after backward and, on the hierarchical
path, for the parameters after the update) minus the same layout's on the bare link. The step
time minus the bare link's step time is the same quantity plus compute noise; on a host shared
with other work (load 3-8 when these were taken) that noise is seconds, so it is printed beside
it but not used.

  bench/scaling.py validate RESULTS.json PARAMS
  bench/scaling.py project SECONDS_PER_IMAGE PARAMS NAME HIDDEN_HIER EFFICIENCY

PARAMS: parameters of G plus D. SECONDS_PER_IMAGE: one core, batch 1, one training iteration
(`spade-dist bench step --set batchSize=1 --set blas_threads=1`). HIDDEN_HIER and EFFICIENCY:
from `validate`.
"""
import json
import sys

RATE = {"1gbit+1ms": 1e9 / 8, "100mbit": 100e6 / 8}
LATENCY = {"1gbit+1ms": 1e-3, "100mbit": 50e-6}
LAYOUTS = {  # layout: (hosts, path, bytes per gradient on the wire)
    "3x1-flat": (3, "flat", 4), "3x1-hier": (3, "hier", 4), "3x1-bf16": (3, "hier", 2),
    "2x2-flat": (2, "flat", 4), "2x2-hier": (2, "hier", 4), "2x2-bf16": (2, "hier", 2),
}
BUCKETS = 24         # 4 MiB buckets of G and D per step at ~100 M parameters


def hierarchical(nodes, grad_bytes, wire, rate, efficiency, latency, buckets):
    """(t_rs, t_ag) in seconds."""
    share = (nodes - 1) / nodes * grad_bytes / (efficiency * rate)
    # The reduce-scatters start one by one as backward finishes buckets; the all-gathers are
    # issued together after the update, so their latencies overlap.
    return share * wire / 4 + (nodes - 1) * latency * buckets, share + (nodes - 1) * latency


def validate(results_path, params):
    rows = json.load(open(results_path))
    step = {(r["link"], r["layout"]): r["step_s"] for r in rows if "step_s" in r}
    wait = {(r["link"], r["layout"]): r["comm_wait_s"] for r in rows if "step_s" in r}
    reduce = {(r["link"], int(r["layout"].split("-")[1][0])): r["reduce_s"] for r in rows if "reduce_s" in r}
    grad_bytes = 4 * params
    buckets = -(-grad_bytes // (4 << 20)) + 1   # G and D each end with a partial bucket
    exposed = lambda link, layout: wait[(link, layout)] - wait[("none", layout)]
    step_delta = lambda link, layout: step[(link, layout)] - step[("none", layout)]
    print(f"S = {grad_bytes / 1e6:.0f} MB per step\n")
    print("| link | hosts | all-reduce of S alone (s) | efficiency (bytes per host / wire rate) |")
    print("|---|---|---|---|")
    efficiency = {}
    for (link, hosts), t in sorted(reduce.items()):
        if link in RATE:
            eff = 2 * (hosts - 1) / hosts * grad_bytes / (t * RATE[link])
            if hosts == 2:
                efficiency[link] = eff
            print(f"| {link} | {hosts} | {t:.2f} | {eff:.2f} |")

    def parts(link, layout):
        """(share that backward can hide, share it cannot) of the layout's communication."""
        hosts, path, wire = LAYOUTS[layout]
        if path == "flat":
            return reduce[(link, hosts)], 0.0
        return hierarchical(hosts, grad_bytes, wire, RATE[link], efficiency[link], LATENCY[link], buckets)

    fit = "1gbit+1ms"
    hidden = {}
    for path, layout in (("flat", "3x1-flat"), ("hier", "3x1-hier")):
        hideable, exposed_always = parts(fit, layout)
        hidden[path] = min(1.0, max(0.0, 1 - (exposed(fit, layout) - exposed_always) / hideable))
    print(f"\nfitted on 3x1 at {fit}: hidden_flat = {hidden['flat']:.2f}, hidden_hier = {hidden['hier']:.2f}")
    print("\n| link | layout | exposed measured (s) | predicted (s) | predicted / measured | step - bare step (s) |")
    print("|---|---|---|---|---|---|")
    worst = []
    for link in RATE:
        for layout, (hosts, path, wire) in LAYOUTS.items():
            if (link, layout) not in step or ("none", layout) not in step:
                continue
            measured = exposed(link, layout)
            hideable, exposed_always = parts(link, layout)
            predicted = (1 - hidden[path]) * hideable + exposed_always
            ratio = predicted / measured
            fitted = link == fit and layout in ("3x1-flat", "3x1-hier")
            if not fitted:
                worst.append((abs(ratio - 1), link, layout))
            print(f"| {link} | {layout} | {measured:.2f} | {predicted:.2f} | {ratio:.2f}{' (fitted)' if fitted else ''} | "
                  f"{step_delta(link, layout):.2f} |")
    within = sum(1 for w, _, _ in worst if w <= 0.2)
    w, link, layout = max(worst)
    print(f"\n{within} of {len(worst)} validation points within 20 %; worst: {layout} at {link}, {w:.0%}")


def project(seconds_per_image, params, name, hidden, efficiency, cores=32, node_efficiency=0.91):
    """Nodes of `cores` cores, one rank per core at batch 1, the hierarchical path with float32
    gradients. node_efficiency: 2 ranks on 2 cores ran 1.82x one rank (docs/distributed.md),
    taken as the efficiency within a node."""
    t_compute = seconds_per_image / node_efficiency
    grad_bytes = 4 * params
    buckets = -(-grad_bytes // (4 << 20)) + 1
    per_node = cores / t_compute
    print(f"| {name} | nodes | global batch | 10 Gbit/s: img/s | efficiency | 100 Gbit/s: img/s | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for nodes in (1, 8, 32, 128):
        cells = []
        for gbit in (10, 100):
            t_rs, t_ag = hierarchical(nodes, grad_bytes, 4, gbit * 1e9 / 8, efficiency, 5e-6, buckets)
            ips = nodes * cores / (t_compute + (1 - hidden) * t_rs + t_ag)
            cells += [f"{ips:.1f}", f"{ips / (nodes * per_node):.1%}"]
        print(f"| | {nodes} | {nodes * cores} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "validate":
        validate(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 7 and sys.argv[1] == "project":
        project(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
