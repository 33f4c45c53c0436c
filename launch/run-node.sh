#!/usr/bin/env bash
# Single-node launcher: mpirun with ranks x OpenBLAS threads = the node's CPUs.
#
#   launch/run-node.sh [-n RANKS] [-t THREADS] [--cpus C] [--dry-run] [--] [spade-dist arguments]
#
# Examples
#   launch/run-node.sh                                   # one rank per CPU, 1 BLAS thread each: `spade-dist train`
#   launch/run-node.sh -n 4 -- train --config configs/small-128.yaml
#   launch/run-node.sh -n 2 -t 8 -- train --config configs/landcover.yaml --resume auto
#   launch/run-node.sh -n 1 -- bench step --config configs/small-128.yaml
#
# What it chooses (printed before it runs):
#   * CPUs: those this shell may run on (`nproc`, i.e. the affinity mask / cgroup cpuset),
#     unless --cpus says otherwise.
#   * Ranks and threads: neither given -> one rank per CPU, 1 thread each; one given ->
#     the other = CPUs / it. The threads are passed to spade-dist as
#     `--set blas_threads=T` (for train, generate, eval and bench), so every rank runs
#     exactly T OpenBLAS threads whatever the trainer would have guessed.
#   * Binding: OpenMPI binds each rank to ONE core by default when np <= 2 (to a socket
#     above that), which starves a rank running several BLAS threads. So:
#       T = 1            --map-by core --bind-to core          (one core per rank)
#       T > 1            --map-by slot:PE=T --bind-to core     (T adjacent cores per rank)
#       R x T > CPUs     --oversubscribe --bind-to none        (with a warning: slow)
#     On CPUs with SMT (hyper-threads) OpenMPI counts cores, not hardware threads; then
#     --use-hwthread-cpus is added so the numbers above count hardware threads.
#   * As root: --allow-run-as-root (OpenMPI refuses to start otherwise).
#
# Environment
#   SPADE_DIST_BIN   the spade-dist binary (default: <repo>/.build/release/spade-dist)
#   MPIRUN           the mpirun to use (default: mpirun on PATH)
#   MPIRUN_ARGS      extra mpirun arguments, split on spaces (e.g. "--mca btl self,vader")
#
# The spade-dist arguments default to `train` (the embedded tiny config on synthetic data).
# Every rank runs the same command; only rank 0 prints progress and writes the run directory.

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}
die() { printf 'run-node: error: %s\n' "$*" >&2; exit 2; }
is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

ranks="" threads="" cpus="" dry_run=0
while (($# > 0)); do
    case "$1" in
        -n | --ranks) (($# >= 2)) || die "$1 needs a value"; ranks="$2"; shift 2 ;;
        -t | --threads) (($# >= 2)) || die "$1 needs a value"; threads="$2"; shift 2 ;;
        --cpus) (($# >= 2)) || die "$1 needs a value"; cpus="$2"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;   # the first word we do not know starts the spade-dist arguments
    esac
done
args=("$@")
((${#args[@]} > 0)) || args=(train)

[[ -z "$ranks" ]] || is_count "$ranks" || die "--ranks must be a positive integer, got '$ranks'"
[[ -z "$threads" ]] || is_count "$threads" || die "--threads must be a positive integer, got '$threads'"
if [[ -z "$cpus" ]]; then
    # nproc honours the affinity mask and cgroup cpusets, and OMP_NUM_THREADS: ignore the latter.
    cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
fi
is_count "$cpus" || die "--cpus must be a positive integer, got '$cpus'"

if [[ -z "$ranks" && -z "$threads" ]]; then
    ranks="$cpus" threads=1
elif [[ -z "$threads" ]]; then
    threads=$((cpus / ranks)); ((threads >= 1)) || threads=1
elif [[ -z "$ranks" ]]; then
    ranks=$((cpus / threads)); ((ranks >= 1)) || ranks=1
fi

bin="${SPADE_DIST_BIN:-$root/.build/release/spade-dist}"
if [[ ! -x "$bin" ]]; then
    die "no spade-dist binary at $bin: build it first (swift build -c release, or launch/train.sh), or set SPADE_DIST_BIN"
fi
mpirun="${MPIRUN:-mpirun}"
if ((dry_run == 0)) && ! command -v "$mpirun" >/dev/null 2>&1; then
    die "$mpirun not found: install OpenMPI (launch/setup.sh), or set MPIRUN"
fi

mpi=("$mpirun" -np "$ranks")
if [[ "$(id -u)" == 0 ]]; then
    mpi+=(--allow-run-as-root)
fi
# Hardware threads per core (SMT): OpenMPI maps and binds by cores unless told otherwise.
smt=1
if command -v lscpu >/dev/null 2>&1; then
    smt="$(LC_ALL=C lscpu 2>/dev/null | awk -F: '/^Thread\(s\) per core/ {gsub(/ /, "", $2); print $2}')"
    is_count "${smt:-}" || smt=1
fi
unit=core
if ((smt > 1)); then
    mpi+=(--use-hwthread-cpus)
    unit=hwthread
fi
used=$((ranks * threads))
if ((used > cpus)); then
    printf 'run-node: warning: %d ranks x %d threads = %d > %d CPUs: oversubscribing without binding (slow)\n' \
        "$ranks" "$threads" "$used" "$cpus" >&2
    mpi+=(--oversubscribe --bind-to none)
elif ((threads == 1)); then
    mpi+=(--map-by "$unit" --bind-to "$unit")
else
    mpi+=(--map-by "slot:PE=$threads" --bind-to "$unit")
fi
if [[ -n "${MPIRUN_ARGS:-}" ]]; then
    read -r -a extra <<<"$MPIRUN_ARGS"
    mpi+=("${extra[@]}")
fi

# blas_threads goes right after the subcommand, so a --set blas_threads=... of the user's wins.
cmd=("${mpi[@]}" "$bin" "${args[0]}")
case "${args[0]}" in
    train | generate | eval | bench) cmd+=(--set "blas_threads=$threads") ;;
esac
cmd+=("${args[@]:1}")

printf 'run-node: %d CPUs -> %d rank(s) x %d OpenBLAS thread(s)\n' "$cpus" "$ranks" "$threads"
printf 'run-node: +'
printf ' %q' "${cmd[@]}"
printf '\n'
((dry_run == 0)) || exit 0
exec "${cmd[@]}"
