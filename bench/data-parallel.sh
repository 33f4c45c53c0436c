#!/usr/bin/env bash
# Data-parallel throughput of the real trainer on one node (docs/distributed.md, "Benchmark"):
#
#   np1x2   mpirun -np 1 --bind-to none, 2 OpenBLAS threads, batch 4
#   np2     mpirun -np 2 (one core each, 1 thread),       batch 2 per rank (same global batch 4);
#           gradients summed in node-shared memory, optimizer sharded (gradient_transport auto)
#   np2-mpi np2 with gradient_transport mpi: MPI's non-blocking all-reduce, full optimizer per
#           rank (the multi-node path, here over OpenMPI's shared-memory transport)
#   np2-tcp np2-mpi with --mca btl tcp,self (TCP loopback instead of shared memory)
#   np2-mpi-1b  np2-mpi with bucket_mb 1e4: one bucket per network, so the generator's
#           all-reduce starts only when its backward has ended (no overlap) -> the reference
#           for "hidden" (np2-tcp-1b likewise over TCP)
#   2x1-indep  two independent single-rank runs (batch 2, 1 thread), pinned to core 0 and 1
#           with taskset, at the same time: np2 without any communication or synchronisation,
#           an upper bound for np2 (images/s = the sum of the two)
#
# Each variant trains STEPS steps of synthetic data (no checkpoints/samples during the run,
# log_every 1); from rank 0's metrics.jsonl, steps after WARMUP give per-step
#   images_per_s   global images / wall time of the step
#   comm_wait_s    time finish() waited for gradient all-reduces after backward
#   sync_s         time in blocking collectives (batch-norm statistics, per-step status):
#                  mostly waiting for the slower rank at each batch-norm layer
#   comm_poll_s    time in poll() during backward (the reductions' copies and additions,
#                  done inline by the main thread: OpenMPI has no progress thread)
# Variants are interleaved ROUNDS times (A B C D, A B C D, ...) because the host is shared
# and noisy; the table reports medians over all rounds' steps, and
#   best     = the best round's median images/s (the least disturbed run)
#   vs np1x2 = median over rounds of (variant / np1x2 of the same round): paired, so slow
#              changes of the host's load cancel
#   wait %   = median comm_wait_s / median step time
#   hidden   = 1 - comm_wait(bucketed, polled) / comm_wait(one bucket after backward)
#
# Usage: bench/data-parallel.sh [model ...]      models: tiny (64x64, ngf 16; the embedded
#        default) and small128 (128x128, ngf 32, spade_hidden 64); default: both.
# Env:   STEPS (default 24), WARMUP (4), ROUNDS (3), BUILD=0 to skip the build,
#        BIN (default .build/release/spade-dist), SCRATCH (--scratch-path, default .build),
#        OUT (directory for runs, default a temp dir, removed at the end unless KEEP=1).
# Needs: OpenMPI's mpirun, python3 (for the JSON lines).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-24}
WARMUP=${WARMUP:-4}
ROUNDS=${ROUNDS:-3}
SCRATCH=${SCRATCH:-.build}
BIN=${BIN:-$SCRATCH/release/spade-dist}
MODELS=("$@")
[ ${#MODELS[@]} -eq 0 ] && MODELS=(tiny small128)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "${BUILD:-1}" = 1 ]; then
  swift build -c release --scratch-path "$SCRATCH" --product spade-dist >/dev/null
fi
OUT=${OUT:-$(mktemp -d /tmp/spade-bench-dp.XXXXXX)}
mkdir -p "$OUT"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$OUT"' EXIT

model_args() {
  case "$1" in
    tiny) echo "" ;;
    small128) echo "--set crop_size=128 --set load_size=144 --set ngf=32 --set ndf=32 --set spade_hidden=64" ;;
    *) echo "unknown model $1 (tiny, small128)" >&2; exit 2 ;;
  esac
}

mpi="--set gradient_transport=mpi"
common="--set log_every=1 --set checkpoint_every=0 --set sample_every=0 --set drift_check_every=0 --set synthetic_count=256 --steps $STEPS"

run_variant() {  # model variant round
  local model=$1 v=$2 round=$3 dir="$OUT/$1/$2/r$3"
  local margs; margs=$(model_args "$model")
  rm -rf "$dir"
  case "$v" in
    np1x2)      mpirun -np 1 --bind-to none "$BIN" train $common $margs --set batchSize=4 --set blas_threads=2 --run-dir "$dir" ;;
    np2)        mpirun -np 2 "$BIN" train $common $margs --set batchSize=2 --run-dir "$dir" ;;
    np2-mpi)    mpirun -np 2 "$BIN" train $common $margs --set batchSize=2 $mpi --run-dir "$dir" ;;
    np2-mpi-1b) mpirun -np 2 "$BIN" train $common $margs --set batchSize=2 $mpi --set bucket_mb=10000 --run-dir "$dir" ;;
    np2-tcp)    mpirun -np 2 --mca btl tcp,self "$BIN" train $common $margs --set batchSize=2 $mpi --run-dir "$dir" ;;
    np2-tcp-1b) mpirun -np 2 --mca btl tcp,self "$BIN" train $common $margs --set batchSize=2 $mpi --set bucket_mb=10000 --run-dir "$dir" ;;
    2x1-indep)  taskset -c 0 "$BIN" train $common $margs --set batchSize=2 --set blas_threads=1 --run-dir "$dir/a" &
                taskset -c 1 "$BIN" train $common $margs --set batchSize=2 --set blas_threads=1 --run-dir "$dir/b"
                wait $! ;;
  esac >"$dir.log" 2>&1 || { echo "variant $v failed; see $dir.log" >&2; cat "$dir.log" >&2; exit 1; }
}

VARIANTS=(np1x2 np2 np2-mpi np2-tcp np2-mpi-1b np2-tcp-1b 2x1-indep)
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $STEPS steps (first $WARMUP dropped) x $ROUNDS interleaved rounds"
for model in "${MODELS[@]}"; do
  mkdir -p "$OUT/$model"; rm -f "$OUT/$model/loads"
  for variant in "${VARIANTS[@]}"; do mkdir -p "$OUT/$model/$variant"; done
  for round in $(seq 1 "$ROUNDS"); do
    echo "round $round: load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/$model/loads"
    for variant in "${VARIANTS[@]}"; do run_variant "$model" "$variant" "$round"; done
  done
  python3 - "$OUT/$model" "$WARMUP" "$model" "${VARIANTS[@]}" <<'EOF'
import json, statistics as st, sys, glob
root, warmup, model, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
res = {}
for v in variants:
    ips, wait, step, per_round, sync, poll = [], [], [], [], [], []
    if v == "2x1-indep":  # two concurrent batch-2 runs: throughput = sum of their medians per round
        for d in sorted(glob.glob(f"{root}/{v}/r*/")):
            per_round.append(sum(st.median(json.loads(l)["images_per_s"] for l in list(open(f"{d}/{x}/metrics.jsonl"))[warmup:])
                                 for x in ("a", "b")))
        res[v] = dict(ips=st.median(per_round), wait=0.0, step=4 / st.median(per_round), rounds=per_round, sync=0.0, poll=0.0)
        continue
    for f in sorted(glob.glob(f"{root}/{v}/r*/metrics.jsonl")):
        rows = [json.loads(l) for l in open(f) if l.strip()][warmup:]
        ips += [r["images_per_s"] for r in rows]
        wait += [r["comm_wait_s"] for r in rows]
        sync += [r.get("sync_s", 0.0) for r in rows]
        poll += [r.get("comm_poll_s", 0.0) for r in rows]
        step += [4 / r["images_per_s"] for r in rows]
        per_round.append(st.median(r["images_per_s"] for r in rows))
    res[v] = dict(ips=st.median(ips), wait=st.median(wait), step=st.median(step), rounds=per_round,
                  sync=st.median(sync), poll=st.median(poll))
base = res["np1x2"]["rounds"]
print(f"\n## {model}: global batch 4, images/s (median over steps; per-round medians in brackets)\n")
print("load averages at the start of each round: " + "; ".join(l.split(": load ")[1].strip() for l in open(f"{root}/loads")) + "\n")
print("| variant | images/s | best | vs np1x2 | step s | comm_wait | wait % of step | hidden | sync_s | comm_poll_s |")
print("|---|---|---|---|---|---|---|---|---|---|")
for v in variants:
    r = res[v]
    hidden = ""
    ref = {"np2-mpi": "np2-mpi-1b", "np2-tcp": "np2-tcp-1b"}.get(v)
    if ref and res[ref]["wait"] > 0:
        hidden = f"{100 * (1 - r['wait'] / res[ref]['wait']):.0f}%"
    rounds = ", ".join(f"{x:.2f}" for x in r["rounds"])
    paired = st.median(a / b for a, b in zip(r["rounds"], base))
    print(f"| {v} | {r['ips']:.2f} [{rounds}] | {max(r['rounds']):.2f} | {paired:.2f}x | {r['step']:.3f} | {r['wait'] * 1000:.1f} ms | "
          f"{100 * r['wait'] / r['step']:.1f}% | {hidden} | {r['sync'] * 1000:.0f} ms | {r['poll'] * 1000:.0f} ms |")
EOF
done
