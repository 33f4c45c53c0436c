#!/usr/bin/env bash
# spade-dist against PyTorch, measured in the same run: the same model and the same training
# iteration (bench/pytorch/spade_ref.py `canonical_iteration`, the project's PyTorch reference),
# the same data shape, the same cores, interleaved round by round (the host is shared and noisy).
#
# Configs (CONFIGS, default "64 128 256"), all label_nc 8, no instance map, spade_hidden 128,
# global batch 2:
#   64    64x64,   ngf 16, ndf 16
#   128   128x128, ngf 32, ndf 32
#   256   256x256, ngf 64, ndf 64 (the paper's size; fewer iterations)
# Layouts, each round, in this order:
#   spade-dist, one process x 2 BLAS threads    `spade-dist bench step` (median of its repeats)
#   spade-dist, mpirun -np 2 x 1 thread         `spade-dist train`, batch 1 per rank; per-step
#                                               time from metrics.jsonl after WARM steps
#   PyTorch, one process x 2 threads            bench/pytorch/time_iteration.py (its best here)
# Prints, per config, the median seconds per iteration of each layout over ROUNDS rounds with
# the range, and each spade-dist layout's ratio to PyTorch: the median of the per-round ratios
# (each round's numbers taken minutes apart at most) and their range.
#
# Usage: bench/vs-pytorch.sh   Env: ROUNDS (5), CONFIGS ("64 128 256"), BUILD=0 (skip the
#        build), BIN (.build/release/spade-dist), TORCH_PYTHON (a python with torch; default: a
#        venv in .build/venv-pytorch, created with torch's CPU wheel from PyPI on first use).
# The environment is left as it is (OPENBLAS_CORETYPE included): measure what a user gets.
# Time it on a quiet host (`uptime` load below 1): load slows PyTorch more than spade-dist.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
CONFIGS=${CONFIGS:-64 128 256}
BIN=${BIN:-.build/release/spade-dist}
if [ "${BUILD:-1}" = 1 ]; then swift build -c release --product spade-dist >/dev/null; fi
if [ -z "${TORCH_PYTHON:-}" ]; then
  venv=.build/venv-pytorch
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
    echo "[bench] installing torch (CPU) into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "torch==2.13.0+cpu" numpy
  fi
  TORCH_PYTHON=$venv/bin/python
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=$(mktemp -d /tmp/spade-vs-pytorch.XXXXXX)
echo "[bench] $(uptime)" >&2

for config in $CONFIGS; do
  case "$config" in
    64) crop=64 nf=16 iterations=8 steps=30 warm=10 ;;
    128) crop=128 nf=32 iterations=5 steps=14 warm=6 ;;
    256) crop=256 nf=64 iterations=2 steps=5 warm=2 ;;
    *) echo "bench/vs-pytorch.sh: unknown config $config (64, 128 or 256)" >&2; exit 2 ;;
  esac
  model=(--set crop_size="$crop" --set load_size="$crop" --set ngf="$nf" --set ndf="$nf" --set spade_hidden=128
         --set label_nc=8 --set synthetic_classes=8)
  for round in $(seq "$ROUNDS"); do
    echo "[bench] $config, round $round: spade-dist one process x 2 threads" >&2
    "$BIN" bench step "${model[@]}" --set blas_threads=2 --set batchSize=2 --repeats "$iterations" --json \
      >"$OUT/$config.sd1.r$round.json"
    echo "[bench] $config, round $round: spade-dist mpirun -np 2" >&2
    mpirun -np 2 "$BIN" train "${model[@]}" --set batchSize=1 --set log_every=1 --set checkpoint_every=0 \
      --set sample_every=0 --set drift_check_every=0 --set synthetic_count=64 --steps "$steps" \
      --run-dir "$OUT/$config.np2.r$round" >"$OUT/$config.np2.r$round.log" 2>&1
    echo "[bench] $config, round $round: PyTorch one process x 2 threads" >&2
    "$TORCH_PYTHON" bench/pytorch/time_iteration.py --crop "$crop" --ngf "$nf" --ndf "$nf" --hidden 128 \
      --label-nc 8 --batch 2 --iterations "$iterations" --warmup 1 --threads 2 >"$OUT/$config.torch.r$round.json"
  done
  echo "$warm" >"$OUT/$config.warm"
done
echo "[bench] $(uptime)" >&2

python3 - "$OUT" "$ROUNDS" $CONFIGS <<'PY'
import json, statistics, sys
out, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
def spread(xs):
    return f"{med(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"
print("| config | spade-dist 1 process x 2 threads (s) | spade-dist mpirun -np 2 (s) | PyTorch 2 threads (s) "
      "| 1 process / PyTorch | mpirun -np 2 / PyTorch |")
print("|---|---|---|---|---|---|")
for c in configs:
    warm = int(open(f"{out}/{c}.warm").read())
    one, np2, torch = [], [], []
    for r in range(1, rounds + 1):
        one.append(json.load(open(f"{out}/{c}.sd1.r{r}.json"))["seconds_per_iteration"])
        steps = [json.loads(l) for l in open(f"{out}/{c}.np2.r{r}/metrics.jsonl")]
        np2.append(med([2 / s["images_per_s"] for s in steps if s["step"] > warm]))
        torch.append(med(json.load(open(f"{out}/{c}.torch.r{r}.json"))["seconds"]))
    r1 = [a / t for a, t in zip(one, torch)]
    r2 = [a / t for a, t in zip(np2, torch)]
    print(f"| {c}x{c} | {spread(one)} | {spread(np2)} | {spread(torch)} | "
          f"{med(r1):.2f} ({min(r1):.2f}-{max(r1):.2f}) | {med(r2):.2f} ({min(r2):.2f}-{max(r2):.2f}) |")
print(f"\nmedians over {rounds} interleaved rounds (range in brackets); raw results: {out}")
PY
