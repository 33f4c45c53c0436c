#!/usr/bin/env bash
# Gradient all-reduce overlap benchmark (SpadeDist), np=2 on one node:
#   shared memory (OpenMPI's default vader BTL) and TCP loopback (--mca btl tcp,self).
# A simulated backward of 40 layers finalises 40 gradient tensors (last layer
# first) with compute between them and poll() after each; reported per step
# (mean over steps 2..N, slowest rank):
#   comm_wait  time finish() waits for reductions after backward ("comm_wait_s")
#   hidden     1 - comm_wait / (time of one blocking MPI_Allreduce of all gradients)
#   poll       time inside poll() during backward (MPI progress: copies and adds
#              done inline, since OpenMPI has no progress thread)
# Usage: bench/allreduce-overlap.sh [total-MB] [backward-ms] [steps]
# Env: NP (default 2), BUILD=0 to skip the build, MPIRUN_ARGS for extra mpirun flags.
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL_MB=${1:-32}
BACKWARD_MS=${2:-300}
STEPS=${3:-6}
NP=${NP:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "${BUILD:-1}" = 1 ]; then
  swift build -c release --scratch-path .build-dist --product spade-dist-commcheck >/dev/null
fi
BIN=.build-dist/release/spade-dist-commcheck
run() { mpirun -np "$NP" ${MPIRUN_ARGS:-} "$@"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, np=$NP, $TOTAL_MB MB gradients, ${BACKWARD_MS} ms backward, $STEPS steps"
for transport in shm tcp; do
  mca=()
  [ "$transport" = tcp ] && mca=(--mca btl tcp,self)
  echo "## $transport: blocking vs non-blocking all-reduce latency"
  run "${mca[@]}" "$BIN" pingpong
  for bucket_kb in 1024 4096; do
    echo "## $transport: bucket ${bucket_kb} KiB, polled"
    run "${mca[@]}" "$BIN" buckets --total-mb "$TOTAL_MB" --backward-ms "$BACKWARD_MS" --steps "$STEPS" --bucket-kb "$bucket_kb" | tail -1
  done
  echo "## $transport: bucket 4096 KiB, never polled during backward"
  run "${mca[@]}" "$BIN" buckets --total-mb "$TOTAL_MB" --backward-ms "$BACKWARD_MS" --steps "$STEPS" --bucket-kb 4096 --no-poll | tail -1
done
