#!/usr/bin/env python3
"""Scaling model of spade-dist across nodes (docs/scaling.md).

A step is the node's compute plus the part of the gradient reduction that backward does not
hide. Each node (with the hierarchical reduction, or one rank per node) all-reduces the
gradients of G and D, S = 4 bytes x parameters, over its link once per step:

    t_reduce(N) = 2 (N - 1) / N * S / (efficiency * bandwidth) + 2 (N - 1) * latency * buckets
    t_step(N)   = t_compute + (1 - hidden) * t_reduce(N)

`efficiency` (the share of the wire rate an all-reduce gets through TCP) and t_reduce on the
simulated links are measured without any training (bench/cluster.sh's calibration:
spade-dist-commcheck all-reduces S in 4 MiB buckets, the trainer's own code path); `hidden`,
the fraction of the reduction that backward hides, is fitted once, on 3 hosts x 1 rank at
1 Gbit/s + 1 ms. The other five measurements validate the model.

  bench/scaling.py validate RESULTS.json PARAMS
  bench/scaling.py project SECONDS_PER_IMAGE PARAMS NAME HIDDEN EFFICIENCY

PARAMS: parameters of G plus D. SECONDS_PER_IMAGE: one core, batch 1, one training iteration
(`spade-dist bench step --set batchSize=1 --set blas_threads=1`). HIDDEN and EFFICIENCY: from
`validate`.
"""
import json
import sys

RATE = {"1gbit+1ms": 1e9 / 8, "100mbit": 100e6 / 8}
HOSTS = {"3x1": 3, "2x2-flat": 2, "2x2-hier": 2}
BUCKETS = 24         # 4 MiB buckets of G and D per step at the projected model sizes (~100 M parameters)


def validate(results_path, params):
    rows = json.load(open(results_path))
    step = {(r["link"], r["layout"]): r["step_s"] for r in rows if "step_s" in r}
    reduce = {(r["link"], int(r["layout"].split("-")[1][0])): r["reduce_s"] for r in rows if "reduce_s" in r}
    grad_bytes = 4 * params
    exposed = lambda link, layout: step[(link, layout)] - step[("none", layout)]
    hidden = max(0.0, 1 - exposed("1gbit+1ms", "3x1") / reduce[("1gbit+1ms", 3)])
    print(f"S = {grad_bytes / 1e6:.0f} MB per step; fitted on 3x1 at 1gbit+1ms: hidden = {hidden:.2f}\n")
    print("| link | hosts | all-reduce of S alone (s) | efficiency (ring bytes / wire rate) |")
    print("|---|---|---|---|")
    for (link, hosts), t in sorted(reduce.items()):
        if link in RATE:
            eff = 2 * (hosts - 1) / hosts * grad_bytes / (t * RATE[link])
            print(f"| {link} | {hosts} | {t:.2f} | {eff:.2f} |")
    print("\n| link | layout | exposed measured (s) | predicted (1 - hidden) x all-reduce (s) | predicted / measured |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for link in RATE:
        for layout, hosts in HOSTS.items():
            measured = exposed(link, layout)
            predicted = (1 - hidden) * reduce[(link, hosts)]
            ratio = predicted / measured
            fitted = (link, layout) == ("1gbit+1ms", "3x1")
            if not fitted:
                worst = max(worst, abs(ratio - 1))
            print(f"| {link} | {layout} | {measured:.2f} | {predicted:.2f} | {ratio:.2f}{' (fitted)' if fitted else ''} |")
    print(f"\nworst |predicted / measured - 1| over the five validation points: {worst:.0%}")


def project(seconds_per_image, params, name, hidden, efficiency, cores=32, node_efficiency=0.91):
    """Nodes of `cores` cores, one rank per core at batch 1. node_efficiency: 2 ranks on 2 cores
    ran 1.82x one rank (docs/distributed.md), taken as the efficiency within a node."""
    t_compute = seconds_per_image / node_efficiency
    grad_bytes = 4 * params
    per_node = cores / t_compute
    print(f"| {name} | nodes | global batch | 10 Gbit/s: img/s | efficiency | 100 Gbit/s: img/s | efficiency |")
    print("|---|---|---|---|---|---|---|")
    for nodes in (1, 8, 32, 128):
        cells = []
        for gbit in (10, 100):
            t_reduce = 0.0
            if nodes > 1:
                t_reduce = (2 * (nodes - 1) / nodes * grad_bytes / (efficiency * gbit * 1e9 / 8)
                            + 2 * (nodes - 1) * 5e-6 * BUCKETS)
            ips = nodes * cores / (t_compute + (1 - hidden) * t_reduce)
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
