#!/usr/bin/env python3
"""Scaling model of spade-dist across nodes (docs/scaling.md).

Per step, every node computes its share of the global batch, then the gradients cross the
network. With the hierarchical reduction each node sends and receives its gradients once
(node-shared sums first), cut into buckets that start while backward goes on:

    t_step(N)  = t_compute + exposed(N)
    t_comm(N)  = 2 (N-1)/N * S / B  +  2 (N-1) * L * buckets      (ring all-reduce of S bytes)
    exposed(N) = max(t_comm(N) - overlap * t_backward, t_comm(N) / buckets)

S = gradient bytes of G and D (4 bytes per parameter), B = link bandwidth (bytes/s), L = one-way
latency, t_backward = 2/3 of t_compute (backward costs about twice forward), overlap = the
fraction of backward the buckets can hide behind (all but the last bucket's share, measured on
the simulated cluster as "hidden"), and the last bucket is never hidden.

  bench/scaling.py validate RESULTS.json PARAMS      compare with bench/cluster.sh's measurements
  bench/scaling.py project SECONDS_PER_IMAGE PARAMS NAME [...]   projections for 32-core nodes

PARAMS: parameters of G plus D. SECONDS_PER_IMAGE: one core, batch 1, one training iteration
(`spade-dist bench step --set batchSize=1 --set blas_threads=1`).
"""
import json
import sys

RATES = {"none": None, "1gbit+1ms": (1e9 / 8, 1e-3), "100mbit": (100e6 / 8, 50e-6)}
BUCKETS = 6          # 4 MiB buckets of G and D together at these model sizes (order of magnitude)
OVERLAP = 0.5        # fraction of backward that hides communication (docs/scaling.md)


def t_comm(nodes, grad_bytes, bandwidth, latency, buckets=BUCKETS):
    if nodes <= 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * grad_bytes / bandwidth + 2 * (nodes - 1) * latency * buckets


def exposed(nodes, grad_bytes, bandwidth, latency, t_compute, overlap=OVERLAP, buckets=BUCKETS):
    c = t_comm(nodes, grad_bytes, bandwidth, latency, buckets)
    return max(c - overlap * (2 / 3) * t_compute, c / buckets)


def validate(results_path, params):
    rows = json.load(open(results_path))
    at = {(r["link"], r["layout"]): r for r in rows}
    grad_bytes = 4 * params
    print("| link | layout | measured exposed (s) | predicted (s) | predicted / measured |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for (link, layout), r in sorted(at.items()):
        if link == "none" or layout.endswith("-1b") or layout == "2x2-flat":
            continue
        nodes = 3 if layout.startswith("3x") else 2
        bandwidth, latency = RATES[link]
        t_compute = at[("none", layout)]["step_s"]
        measured = r["step_s"] - t_compute
        predicted = exposed(nodes, grad_bytes, bandwidth, latency, t_compute)
        ratio = predicted / measured if measured > 0 else float("inf")
        worst = max(worst, abs(ratio - 1))
        print(f"| {link} | {layout} | {measured:.3f} | {predicted:.3f} | {ratio:.2f} |")
    print(f"\nworst |predicted / measured - 1| = {worst:.0%}")


def project(seconds_per_image, params, name, cores=32, per_core_batch=1, node_efficiency=0.9):
    """Images per second and scaling efficiency on N nodes of `cores` cores (one rank per core)."""
    t_compute = seconds_per_image * per_core_batch / node_efficiency
    grad_bytes = 4 * params
    single = cores * per_core_batch / t_compute
    print(f"| {name} | nodes | 10 Gbit/s: img/s | efficiency | 100 Gbit/s: img/s | efficiency |")
    print("|---|---|---|---|---|---|")
    for nodes in (1, 8, 32, 128):
        cells = []
        for gbit in (10, 100):
            t = t_compute + exposed(nodes, grad_bytes, gbit * 1e9 / 8, 5e-6, t_compute)
            ips = nodes * cores * per_core_batch / t
            cells += [f"{ips:.1f}", f"{ips / (nodes * single):.0%}"]
        print(f"| | {nodes} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "validate":
        validate(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 5 and sys.argv[1] == "project":
        project(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
