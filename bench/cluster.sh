#!/usr/bin/env bash
# Training across hosts on the simulated cluster (launch/cluster-sim.sh; docs/distributed.md,
# "Across hosts"), configs/small-128.yaml, synthetic data, no checkpoints or samples:
#
#   3x1-flat     3 hosts x 1 rank, batch 2 each, gradient_transport mpi: every rank all-reduces
#                its whole gradients (MPI_Iallreduce over TCP), a full optimizer per rank
#   3x1-flat-1b  3x1-flat with bucket_mb 1e4: one bucket per network, started after backward:
#                nothing hidden, the reference for "hidden"
#   3x1-hier     3 hosts x 1 rank, gradient_transport auto: reduce-scatter of each bucket between
#                the hosts, optimizer sharded over the ranks, parameter all-gather (ZeRO-1)
#   3x1-hier-1b  3x1-hier with one bucket per network (the reference for its "hidden")
#   3x1-bf16     3x1-hier with gradient_dtype bfloat16 (the reduce-scatter's bytes halved)
#   2x2-flat     2 hosts x 2 ranks, batch 1 each, gradient_transport mpi: all 4 ranks all-reduce
#                their whole gradients over TCP (also the two on the same host)
#   2x2-hier     2 hosts x 2 ranks, gradient_transport auto: node-shared sums on each host, then
#                each rank reduce-scatters its half of every bucket with its counterpart
#   2x2-bf16     2x2-hier with gradient_dtype bfloat16
#
# under three link settings applied to every host: none (the bare veth), 1gbit+1ms (tbf rate
# 1 Gbit/s and 1 ms one-way delay), 100mbit (tbf 100 Mbit/s). From rank 0's metrics.jsonl after
# WARMUP steps: median seconds per step and comm_wait_s (waiting for gradients after backward);
# from the hosts' eth0 counters between steps WARMUP and STEPS - 1: bytes sent per step per host
# (mean over hosts). Then
#   exposed  = step - the same layout's step on the bare link: communication not hidden
#              (the hosts share this machine's 2 cores, so raw step times are not a cluster's)
#   hidden   = 1 - comm_wait(L) / comm_wait(L-1b) at the same link setting, for L = 3x1-flat and
#              3x1-hier: the share of the gradient reduction done while backward still ran
#              (the hierarchical path's parameter all-gather comes after the update and is
#              never hidden; it is not part of comm_wait)
# Link calibration (the scaling model's input, bench/scaling.py): spade-dist-commcheck all-reduces
# the model's gradient bytes (S = 4 x parameters) in 4 MiB buckets over 3 hosts and over 2 hosts
# at each link setting, with no computation to hide behind: "reduce_s" is the time of the
# trainer's own path (GradientAllReducer: non-blocking, polled), "blocking_allreduce_s" that of
# one MPI_Allreduce of the same bytes (OpenMPI's tuned algorithms, for comparison).
# Output: a Markdown table on stdout and OUT/results.json (the input of bench/scaling.py).
#
# Usage: bench/cluster.sh            Env: STEPS (8), WARMUP (2), BUILD=0 (skip the build),
#        BIN (default .build/release/spade-dist), OUT (default a temp dir; kept),
#        PARTS ("train calibrate", the default, or one of them), LAYOUTS (default: all above),
#        LINKS (default: none 1gbit+1ms 100mbit).
# Time it on a quiet host; `nice -n -10 bench/cluster.sh` keeps other work from skewing it.
# Needs root (network namespaces), python3. Brings up its own cluster (state /tmp/spade-bench-cluster,
# hosts b1..b3) and takes it down at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-8}
WARMUP=${WARMUP:-2}
BIN=${BIN:-$PWD/.build/release/spade-dist}
OUT=${OUT:-$(mktemp -d /tmp/spade-bench-cluster.XXXXXX)}
mkdir -p "$OUT"
export CLUSTER_SIM_STATE=/tmp/spade-bench-cluster CLUSTER_SIM_PREFIX=b SPADE_DIST_BIN="$BIN"
sim=launch/cluster-sim.sh
PARTS=${PARTS:-train calibrate}
LAYOUTS=${LAYOUTS:-3x1-flat 3x1-flat-1b 3x1-hier 3x1-hier-1b 3x1-bf16 2x2-flat 2x2-hier 2x2-bf16}
LINKS=${LINKS:-none 1gbit+1ms 100mbit}
GRADIENT_MB=93   # small-128: 24,516,773 parameters of G and D = 93.5 MiB of gradients
if [ "${BUILD:-1}" = 1 ]; then
  swift build -c release --product spade-dist >/dev/null
  swift build -c release --product spade-dist-commcheck >/dev/null
fi
trap '"$sim" down >/dev/null 2>&1 || true' EXIT
"$sim" up 3 >/dev/null

tx_bytes() {   # sum over hosts b1..b3 of eth0's transmitted bytes
  local total=0 h b
  for h in b1 b2 b3; do
    b=$(ip -n "$h" -s -j link show eth0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["bytes"])')
    total=$((total + b))
  done
  echo "$total"
}

set_link() {
  "$sim" clear all >/dev/null
  case "$1" in
    none) ;;
    1gbit+1ms) "$sim" fault all rate 1gbit >/dev/null; "$sim" fault all delay 1 >/dev/null ;;
    100mbit) "$sim" fault all rate 100mbit >/dev/null ;;
  esac
}

run_variant() {   # link layout -> one JSON line in $OUT/results.jsonl
  local link=$1 layout=$2 slots np batch extra=() hosts
  case "$layout" in
    3x1-flat) slots=1 np=3 batch=2 hosts=3 extra=(--set gradient_transport=mpi) ;;
    3x1-flat-1b) slots=1 np=3 batch=2 hosts=3 extra=(--set gradient_transport=mpi --set bucket_mb=10000) ;;
    3x1-hier) slots=1 np=3 batch=2 hosts=3 ;;
    3x1-hier-1b) slots=1 np=3 batch=2 hosts=3 extra=(--set bucket_mb=10000) ;;
    3x1-bf16) slots=1 np=3 batch=2 hosts=3 extra=(--set gradient_dtype=bfloat16) ;;
    2x2-flat) slots=2 np=4 batch=1 hosts=2 extra=(--set gradient_transport=mpi) ;;
    2x2-hier) slots=2 np=4 batch=1 hosts=2 ;;
    2x2-bf16) slots=2 np=4 batch=1 hosts=2 extra=(--set gradient_dtype=bfloat16) ;;
    *) echo "bench/cluster.sh: unknown layout $layout" >&2; return 1 ;;
  esac
  local dir="$OUT/$link-$layout" sampler
  rm -rf "$dir"
  # Steady-state traffic: the hosts' counters when rank 0 has logged step WARMUP and step
  # STEPS - 1 (each line follows its step's update), so neither the start-up broadcast nor the
  # final checkpoint counts.
  (
    for mark in "$WARMUP" "$((STEPS - 1))"; do
      until [ -f "$dir/metrics.jsonl" ] && [ "$(wc -l <"$dir/metrics.jsonl")" -ge "$mark" ]; do sleep 0.05; done
      tx_bytes
    done >"$dir.tx"
  ) &
  sampler=$!
  SLOTS=$slots "$sim" run -np "$np" -- train --config configs/small-128.yaml --steps "$STEPS" --run-dir "$dir" \
    --set batchSize="$batch" --set blas_threads=1 --set log_every=1 --set sample_every=0 \
    --set checkpoint_every=0 --set drift_check_every=0 "${extra[@]}" >"$dir.log" 2>&1 \
    || { kill "$sampler" 2>/dev/null; echo "bench/cluster.sh: $link $layout failed (log: $dir.log)" >&2; return 1; }
  wait "$sampler"
  local sent
  sent=$(awk 'NR == 1 { a = $1 } NR == 2 { print $1 - a }' "$dir.tx")
  python3 - "$dir/metrics.jsonl" "$link" "$layout" "$sent" "$((STEPS - 1 - WARMUP))" "$WARMUP" "$hosts" "$((np * batch))" \
    <<'EOF' >>"$OUT/results.jsonl"
import json, statistics, sys
path, link, layout, sent, counted, warmup, hosts, images = sys.argv[1:]
rows = [json.loads(l) for l in open(path)][int(warmup):]
print(json.dumps({"link": link, "layout": layout,
                  "step_s": statistics.median(int(images) / r["images_per_s"] for r in rows),
                  "comm_wait_s": statistics.median(r["comm_wait_s"] for r in rows),
                  "bytes_per_step_per_host": int(sent) / int(counted) / int(hosts)}))
EOF
}

calibrate() {   # link hosts -> one JSON line: the blocking all-reduce time of the gradient bytes
  local link=$1 hosts=$2 line
  line=$(SPADE_DIST_BIN="$(dirname "$BIN")/spade-dist-commcheck" SLOTS=1 "$sim" run -np "$hosts" -- \
    buckets --total-mb "$GRADIENT_MB" --bucket-kb 4096 --backward-ms 0 --steps 3 2>&1 | grep "^OK buckets")
  python3 - "$link" "$hosts" "$line" <<'EOF' >>"$OUT/results.jsonl"
import json, re, sys
link, hosts, line = sys.argv[1:]
ms = lambda pattern: float(re.search(pattern, line).group(1)) / 1000
print(json.dumps({"link": link, "layout": f"allreduce-{hosts}hosts", "reduce_s": ms(r"comm_wait ([0-9.]+) ms"),
                  "blocking_allreduce_s": ms(r"blocking all-reduce ([0-9.]+) ms"),
                  "bytes": int(float(re.search(r"MB=([0-9.]+)", line).group(1)) * 1048576)}))
EOF
}

# A calibration-only run (PARTS=calibrate) adds to an earlier run's results in the same OUT.
if [[ " $PARTS " == *" train "* ]] || [ ! -f "$OUT/results.jsonl" ]; then : >"$OUT/results.jsonl"; fi
for link in $LINKS; do
  set_link "$link"
  if [[ " $PARTS " == *" train "* ]]; then
    for layout in $LAYOUTS; do run_variant "$link" "$layout"; done
  fi
  if [[ " $PARTS " == *" calibrate "* ]]; then
    calibrate "$link" 3
    calibrate "$link" 2
  fi
done
"$sim" clear all >/dev/null

python3 - "$OUT/results.jsonl" <<'EOF' | tee "$OUT/table.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
at = {(r["link"], r["layout"]): r for r in rows}
print("| link | layout | s/step | comm_wait_s | MB sent per step per host | exposed comm (s) | hidden |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if "step_s" not in r:
        continue
    base = at.get(("none", r["layout"]))
    exposed = r["step_s"] - base["step_s"] if base else float("nan")
    hidden = ""
    ref = at.get((r["link"], r["layout"] + "-1b"))
    if ref and r["link"] != "none" and ref["comm_wait_s"] > 0:
        hidden = f"{max(0.0, 1 - r['comm_wait_s'] / ref['comm_wait_s']):.0%}"
    print(f"| {r['link']} | {r['layout']} | {r['step_s']:.3f} | {r['comm_wait_s']:.3f} | "
          f"{r['bytes_per_step_per_host'] / 1e6:.1f} | {exposed:.3f} | {hidden} |")
json.dump(rows, open(sys.argv[1].replace(".jsonl", ".json"), "w"), indent=1)
EOF
echo "bench/cluster.sh: results in $OUT (results.json, table.md)" >&2
