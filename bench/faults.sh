#!/usr/bin/env bash
# Fault campaign (issue 15, docs/robustness.md): N trials of a random fault on a random rank of
# an `mpirun -np 2` training run, each checked end to end:
#
#   fault      kill -9; SIGTERM; or SIGSTOP, then kill -9 STOP_S seconds later
#   when       uniformly random within the length of an uninterrupted run (start-up included)
#   checks     the job ends within END_LIMIT_S seconds of the (last) signal; the newest
#              checkpoint, if any, loads (`spade-dist inspect`); `--resume auto` finishes the
#              run; its metrics.jsonl (every key but the timings) and its final checkpoint
#              (every tensor's dtype, shape and bytes; step, epoch, data position, skipped
#              steps) equal the uninterrupted run's bit for bit, in the same layout:
#   LAYOUT=node     (default) `mpirun -np 2` on this node
#   LAYOUT=cluster  3 simulated hosts x 1 rank (launch/cluster-sim.sh, its own cluster in
#                   /tmp/spade-faults-cluster, hosts f1..f3; needs root), 1 BLAS thread per rank;
#                   the fault goes to every spade-dist process on the rank's host
#
# Usage: bench/faults.sh N
# Env:   LAYOUT (node), STEPS (default 16), CHECKPOINT_EVERY (2), END_LIMIT_S (10), STOP_S (1),
#        SEED (random; printed, so a failing campaign can be replayed), BUILD=0 to skip the
#        build, BIN (default .build/release/spade-dist), OUT (runs; a temp dir removed at the
#        end unless KEEP=1).
# Prints one line per trial and a summary; exits 1 if any trial failed.
# Needs: OpenMPI's mpirun, python3 (JSON and safetensors headers).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:?usage: bench/faults.sh N}
STEPS=${STEPS:-16}
CHECKPOINT_EVERY=${CHECKPOINT_EVERY:-2}
END_LIMIT_S=${END_LIMIT_S:-10}
STOP_S=${STOP_S:-1}
SEED=${SEED:-$RANDOM}
BIN=${BIN:-.build/release/spade-dist}
LAYOUT=${LAYOUT:-node}
RANDOM=$SEED
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ "${BUILD:-1}" = 1 ] && swift build -c release --product spade-dist >/dev/null
OUT=${OUT:-$(mktemp -d /tmp/spade-faults.XXXXXX)}
mkdir -p "$OUT"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$OUT"' EXIT
case "$LAYOUT" in
  node) ranks=2 ;;
  cluster)
    ranks=3
    export CLUSTER_SIM_STATE=/tmp/spade-faults-cluster CLUSTER_SIM_PREFIX=f CLUSTER_SIM_NET=10.78.0
    export SPADE_DIST_BIN
    SPADE_DIST_BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
    sim=launch/cluster-sim.sh
    "$sim" up 3 >/dev/null
    trap '"$sim" down >/dev/null 2>&1 || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$OUT"' EXIT
    ;;
  *) echo "faults: LAYOUT must be node or cluster, got '$LAYOUT'" >&2; exit 2 ;;
esac

# The small model of the end-to-end tests; every step logged, no samples.
ARGS=(--set ngf=8 --set spade_hidden=16 --set ndf=8 --set synthetic_count=16 --set log_every=1
      --set sample_every=0 --set checkpoint_every="$CHECKPOINT_EVERY" --set keep_checkpoints=2 --steps "$STEPS")
train() {   # train RUN_DIR [extra args]: the layout's job in the background; sets $job
  local dir=$1; shift
  if [ "$LAYOUT" = cluster ]; then
    "$sim" run -np 3 -- train --run-dir "$dir" "${ARGS[@]}" --set blas_threads=1 "$@" >"$dir.log" 2>&1 &
  else
    mpirun -np 2 --oversubscribe "$BIN" train --run-dir "$dir" "${ARGS[@]}" "$@" >"$dir.log" 2>&1 &
  fi
  job=$!
}
signal_rank() {   # signal_rank SIGNAL: to the chosen rank (node) or every spade-dist on its host (cluster)
  if [ "$LAYOUT" = cluster ]; then "$sim" kill "f$((rank + 1))" "$1" >/dev/null 2>&1; else kill "-$1" "$pid"; fi
}
now() { date +%s.%N; }
seconds() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

# The pid of MPI rank $2 among mpirun $1's children (from OMPI_COMM_WORLD_RANK); on the
# simulated cluster, any spade-dist process on the rank's host (one rank per host).
rank_pid() {
  local child
  if [ "$LAYOUT" = cluster ]; then
    ip netns pids "f$(($2 + 1))" 2>/dev/null | while read -r child; do
      [ "$(cat "/proc/$child/comm" 2>/dev/null)" = "$(basename "$BIN" | cut -c1-15)" ] && { echo "$child"; break; }
    done
    return
  fi
  for child in $(pgrep -P "$1"); do
    if { tr '\0' '\n' <"/proc/$child/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$child"; return; fi
  done
}

# Differences between two finished runs (empty when equal): metrics.jsonl without timing keys,
# and the final checkpoints' tensors and progress metadata.
compare_runs() {
  python3 - "$1" "$2" <<'EOF'
import json, struct, sys
timing = {"images_per_s", "data_wait_s", "comm_wait_s", "sync_s", "comm_poll_s"}
def metrics(run):
    return [{k: v for k, v in json.loads(l).items() if k not in timing} for l in open(run + "/metrics.jsonl")]
def checkpoint(run):
    raw = open(run + "/checkpoints/latest.safetensors", "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    tensors = {k: (v["dtype"], v["shape"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in header.items()}
    return tensors, {k: meta.get(k) for k in ("step", "epoch", "data_position", "skipped_steps", "world_size")}
a, b = sys.argv[1], sys.argv[2]
ma, mb = metrics(a), metrics(b)
if ma != mb:
    first = next((i for i, (x, y) in enumerate(zip(ma, mb)) if x != y), min(len(ma), len(mb)))
    print(f"metrics differ from line {first + 1} ({len(ma)} vs {len(mb)} lines)")
ta, pa = checkpoint(a)
tb, pb = checkpoint(b)
if pa != pb:
    print(f"checkpoint metadata differs: {pa} vs {pb}")
diff = sorted(k for k in set(ta) | set(tb) if ta.get(k) != tb.get(k))
if diff:
    print(f"{len(diff)} tensors differ, e.g. {diff[0]}")
EOF
}

echo "faults: seed $SEED, $N trials, layout $LAYOUT ($ranks ranks), $STEPS steps, checkpoint every $CHECKPOINT_EVERY; binary $BIN"
ref="$OUT/reference"
t0=$(now); train "$ref"; wait "$job" || { echo "faults: the uninterrupted run failed:"; cat "$ref.log"; exit 1; }
length=$(seconds "$t0" "$(now)")
echo "faults: uninterrupted run: ${length} s"

passed=0 failures=() worst=0 worst_trial=""
for ((i = 1; i <= N; i++)); do
  faults=(kill term stop-kill)
  fault=${faults[RANDOM % 3]}
  rank=$((RANDOM % ranks))
  at=$(python3 -c "import sys; print(f'{0.2 + $RANDOM / 32767 * (float(sys.argv[1]) - 0.2):.2f}')" "$length")
  run="$OUT/trial-$i"
  rm -rf "$run"
  train "$run"
  sleep "$at"
  # A loaded machine may still be starting the ranks: the fault then comes when the rank is there.
  pid=""
  for _ in $(seq 200); do
    pid=$(rank_pid "$job" "$rank")
    if [ -n "$pid" ] || ! kill -0 "$job" 2>/dev/null; then break; fi
    sleep 0.05
  done
  if [ -z "$pid" ]; then
    wait "$job" || true
    echo "trial $i: $fault rank $rank at ${at}s: the rank was not running (job over); trial repeated"
    i=$((i - 1)); continue
  fi
  case $fault in
    kill) signaled=$(now); signal_rank KILL ;;
    term) signaled=$(now); signal_rank TERM ;;
    stop-kill) signal_rank STOP; sleep "$STOP_S"; signaled=$(now); signal_rank KILL ;;
  esac
  # The job must end by itself within the limit; give it 6x as long before killing it ourselves.
  status=0
  while kill -0 "$job" 2>/dev/null; do
    if [ "$(python3 -c "import sys; print(int(float(sys.argv[1]) > 6 * $END_LIMIT_S))" "$(seconds "$signaled" "$(now)")")" = 1 ]; then
      pkill -KILL -P "$job" || true; kill -KILL "$job" || true
    fi
    sleep 0.05
  done
  wait "$job" || status=$?
  ended=$(seconds "$signaled" "$(now)")
  problems=()
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= $END_LIMIT_S else 1)" "$ended" ||
    problems+=("ended ${ended}s after the signal (limit ${END_LIMIT_S}s)")
  if [ -e "$run/checkpoints/latest.safetensors" ] && ! "$BIN" inspect "$run/checkpoints/latest.safetensors" >/dev/null 2>&1; then
    problems+=("the newest checkpoint does not load")
  fi
  newest=$(basename "$(readlink "$run/checkpoints/latest.safetensors" 2>/dev/null || echo none)")
  train "$run" --resume auto
  if ! wait "$job"; then
    problems+=("--resume auto failed: $(tail -n 1 "$run.log")")
  else
    while IFS= read -r d; do problems+=("$d"); done < <(compare_runs "$ref" "$run")
  fi
  line="trial $i: $fault rank $rank at ${at}s -> exit $status, ended in ${ended}s, newest checkpoint $newest"
  if [ ${#problems[@]} -eq 0 ]; then
    passed=$((passed + 1)); echo "$line; resumed run equal"
  else
    failures+=("trial $i: ${problems[*]}"); echo "$line; FAILED: ${problems[*]}"
  fi
  if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$ended" "$worst"; then
    worst=$ended; worst_trial="trial $i ($fault rank $rank)"
  fi
done
echo "faults: $passed/$N trials passed; worst end time ${worst}s ($worst_trial); seed $SEED"
for f in "${failures[@]}"; do echo "faults: $f"; done
[ ${#failures[@]} -eq 0 ]
