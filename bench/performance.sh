#!/usr/bin/env bash
# Single-process performance tables for docs/performance.md:
#
#   conv   every convolution of G (batch B) and D (batch 2B): forward + backward time
#          against the raw cblas_sgemm time of the same GEMM shapes, same run
#   step   whole training iterations (G and D forward/backward, Adam), batch 2
#
# for the models
#   tiny     the embedded default (64x64, ngf 16, ndf 16, spade_hidden 32)
#   nvlabs64 64x64, ngf 16, ndf 16, spade_hidden 128 (NVlabs hard-codes 128): the model
#            of the PyTorch reference timing in the issue (0.19 s/iteration, 2 threads)
#   c128     128x128, ngf 32, ndf 32, spade_hidden 64
# and both OpenBLAS kernel families (OPENBLAS_CORETYPE=Haswell: AVX2; SkylakeX: AVX-512),
# set for the benchmark command only. Variants are interleaved ROUNDS times because the
# host is shared and noisy; the tables report medians over rounds.
#
# Usage: bench/performance.sh            Env: ROUNDS (3), REPEATS (5), THREADS (1 2),
#        BUILD=0 to skip the build, BIN (default .build/release/spade-dist), OUT (raw JSON dir)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REPEATS=${REPEATS:-5}
THREADS=${THREADS:-"1 2"}
BIN=${BIN:-.build/release/spade-dist}
if [ "${BUILD:-1}" = 1 ]; then swift build -c release --product spade-dist >/dev/null; fi
OUT=${OUT:-$(mktemp -d /tmp/spade-bench-perf.XXXXXX)}
mkdir -p "$OUT"

declare -A MODEL
MODEL[tiny]=""
MODEL[nvlabs64]="--set spade_hidden=128"
MODEL[c128]="--set crop_size=128 --set load_size=144 --set ngf=32 --set ndf=32 --set spade_hidden=64"

for round in $(seq "$ROUNDS"); do
  for model in tiny nvlabs64 c128; do
    for core in Haswell SkylakeX; do
      for t in $THREADS; do
        tag="$model.$core.t$t.r$round"
        echo "[bench] $tag" >&2
        # shellcheck disable=SC2086
        OPENBLAS_CORETYPE=$core "$BIN" bench step ${MODEL[$model]} --set blas_threads="$t" --set batchSize=2 \
          --repeats "$REPEATS" --json > "$OUT/step.$tag.json"
        if [ "$t" = 1 ]; then
          # shellcheck disable=SC2086
          OPENBLAS_CORETYPE=$core "$BIN" bench conv ${MODEL[$model]} --set blas_threads=1 --set batchSize=2 \
            --repeats "$REPEATS" --json > "$OUT/conv.$tag.json"
        fi
      done
    done
  done
done

python3 - "$OUT" <<'EOF'
import glob, json, os, statistics, sys
out = sys.argv[1]
def med(xs): return statistics.median(xs) if xs else float("nan")
print("\n### Convolutions vs raw sgemm (1 thread, batch 2; conv = forward + both backward GEMMs)\n")
print("(raw sgemm = the im2col GEMMs of every conv; 3x3 columns: all 3x3 convs, then those on")
print("im2col and on Winograd alone; GFLOP/s counts im2col flops)\n")
print("| model | kernels | conv ms | raw sgemm ms | conv / sgemm | 3x3 conv / sgemm | 3x3 im2col | 3x3 Winograd | GFLOP/s (conv) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
def ratio(rows, keep):
    sel = [r for r in rows if keep(r)]
    g = sum(r["gemm_seconds"] for r in sel)
    return sum(r["conv_seconds"] for r in sel) / g if g else float("nan")
for model in ["tiny", "nvlabs64", "c128"]:
    for core in ["Haswell", "SkylakeX"]:
        tot, gem, r3, r3i, r3w, gf = [], [], [], [], [], []
        for f in glob.glob(f"{out}/conv.{model}.{core}.t1.r*.json"):
            rows = json.load(open(f))
            c = sum(r["conv_seconds"] for r in rows); g = sum(r["gemm_seconds"] for r in rows)
            tot.append(c); gem.append(g); gf.append(sum(r["gflop"] for r in rows) / c)
            r3.append(ratio(rows, lambda r: r["kernel"] == 3))
            r3i.append(ratio(rows, lambda r: r["kernel"] == 3 and r["algorithm"] == "im2col"))
            r3w.append(ratio(rows, lambda r: r["kernel"] == 3 and r["algorithm"] == "winograd"))
        if tot:
            print(f"| {model} | {core} | {med(tot)*1e3:.1f} | {med(gem)*1e3:.1f} | {med(tot)/med(gem):.2f} | {med(r3):.2f} "
                  f"| {med(r3i):.2f} | {med(r3w):.2f} | {med(gf):.0f} |")
print("\n### Training iterations (one process, batch 2)\n")
print("| model | kernels | BLAS threads | s / iteration | images / s |")
print("| --- | --- | --- | --- | --- |")
for model in ["tiny", "nvlabs64", "c128"]:
    for core in ["Haswell", "SkylakeX"]:
        for t in os.environ.get("THREADS", "1 2").split():
            xs = [json.load(open(f))["seconds_per_iteration"] for f in glob.glob(f"{out}/step.{model}.{core}.t{t}.r*.json")]
            if xs:
                print(f"| {model} | {core} | {t} | {med(xs):.3f} | {2/med(xs):.2f} |")
print(f"\nraw JSON: {out}")
EOF
