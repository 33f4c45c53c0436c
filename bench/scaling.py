#!/usr/bin/env python3
"""Scaling model of spade-dist across nodes (docs/scaling.md).

A step is the node's compute plus the part of the gradient reduction that backward does not
hide. With the hierarchical reduction (several ranks per node) or one rank per node, each node
sends its gradients over its link once per step:

    t_comm   = bytes_per_node / (bandwidth * efficiency) + 2 (N - 1) * latency * buckets
    bytes_per_node = 2 (N - 1) / N * S          (ring / recursive-halving all-reduce of S bytes;
                                                  validation uses the bytes measured per host)
    exposed  = (1 - hidden) * t_comm
    t_step   = t_compute + exposed

S = 4 bytes x (parameters of G + D). `hidden` is the fraction of the reduction that overlaps
backward and `efficiency` TCP's share of the wire rate; both are fitted once, on the 3 x 1
layout at 1 Gbit/s + 1 ms (bench/cluster.sh), and then predict the other measurements.

  bench/scaling.py validate RESULTS.json PARAMS
  bench/scaling.py project SECONDS_PER_IMAGE PARAMS NAME HIDDEN

PARAMS: parameters of G plus D. SECONDS_PER_IMAGE: one core, batch 1, one training iteration
(`spade-dist bench step --set batchSize=1 --set blas_threads=1`). HIDDEN: from `validate`.
"""
import json
import sys

LINKS = {"1gbit+1ms": (1e9 / 8, 1e-3), "100mbit": (100e6 / 8, 50e-6)}
BUCKETS = 8          # 4 MiB buckets per step, order of magnitude for these models
EFFICIENCY = 0.96    # TCP through tbf: 963 Mbit/s of 1 Gbit/s measured (docs/distributed.md)


def t_comm(bytes_per_node, bandwidth, latency, nodes):
    return bytes_per_node / (bandwidth * EFFICIENCY) + 2 * (nodes - 1) * latency * BUCKETS


def validate(results_path, params):
    rows = json.load(open(results_path))
    at = {(r["link"], r["layout"]): r for r in rows}
    exposed = lambda link, layout: at[(link, layout)]["step_s"] - at[("none", layout)]["step_s"]
    nodes = {"3x1": 3, "3x1-1b": 3, "2x2-flat": 2, "2x2-hier": 2}
    # Fit: hidden fraction on 3x1 at 1 Gbit/s + 1 ms.
    bw, lat = LINKS["1gbit+1ms"]
    fit = t_comm(at[("1gbit+1ms", "3x1")]["bytes_per_step_per_host"], bw, lat, 3)
    hidden = max(0.0, 1 - exposed("1gbit+1ms", "3x1") / fit)
    print(f"fitted on 3x1 at 1gbit+1ms: hidden = {hidden:.2f} (S = {4 * params / 1e6:.0f} MB per step)\n")
    print("| link | layout | MB per host per step | t_comm model (s) | exposed measured (s) | predicted (s) | predicted / measured |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for (link, layout), r in sorted(at.items()):
        if link == "none" or layout.endswith("-1b"):
            continue
        bw, lat = LINKS[link]
        c = t_comm(r["bytes_per_step_per_host"], bw, lat, nodes[layout])
        predicted, measured = (1 - hidden) * c, exposed(link, layout)
        ratio = predicted / measured if measured > 0 else float("inf")
        if (link, layout) != ("1gbit+1ms", "3x1"):
            worst = max(worst, abs(ratio - 1))
        print(f"| {link} | {layout} | {r['bytes_per_step_per_host'] / 1e6:.0f} | {c:.2f} | {measured:.2f} | "
              f"{predicted:.2f} | {ratio:.2f} |")
    print(f"\nworst |predicted / measured - 1| outside the fitted point: {worst:.0%}")


def project(seconds_per_image, params, name, hidden, cores=32, node_efficiency=0.91):
    """32-core nodes, one rank per core at batch 1; node_efficiency: 2 ranks on 2 cores gave
    1.82x one rank (docs/distributed.md), taken as the within-node efficiency."""
    t_compute = seconds_per_image / node_efficiency
    grad_bytes = 4 * params
    per_node = cores / t_compute
    print(f"| {name} | nodes | global batch | 10 Gbit/s img/s | efficiency | 100 Gbit/s img/s | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for nodes in (1, 8, 32, 128):
        cells = []
        for gbit in (10, 100):
            ring = 2 * (nodes - 1) / nodes * grad_bytes
            t = t_compute + (1 - hidden) * t_comm(ring, gbit * 1e9 / 8, 5e-6, nodes)
            ips = nodes * cores / t
            cells += [f"{ips:.1f}", f"{ips / (nodes * per_node):.1%}"]
        print(f"| | {nodes} | {nodes * cores} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "validate":
        validate(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 6 and sys.argv[1] == "project":
        project(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
