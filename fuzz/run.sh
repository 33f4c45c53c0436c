#!/usr/bin/env bash
# Builds one libFuzzer target against the package's modules and runs it.
#
#   fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]     TARGET: safetensors image labelmap config
#   fuzz/run.sh TARGET repro FILE                           run one input (a crash file) and exit
#
# 1. `swift build` of the library targets (up to SpadeTrain) into .build-fuzz/ with coverage
#    instrumentation and AddressSanitizer (-sanitize=fuzzer,address; C code -fsanitize=fuzzer-no-link,address).
#    Only libraries are built there: an executable would clash with libFuzzer's main().
# 2. swiftc links fuzz/targets/TARGET.swift with those objects into .build-fuzz/fuzz-TARGET.
# 3. Runs it for SECONDS on .build-fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET, grown by
#    the run); crashes go to .build-fuzz/crashes/TARGET/. The last lines of the log give the
#    executions (#N) and coverage (cov: edges, ft: features).
# Run it under `nice -n 19` on a shared machine.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${1:?usage: fuzz/run.sh TARGET SECONDS|repro FILE}"
mode="${2:?usage: fuzz/run.sh TARGET SECONDS|repro FILE}"
[[ -f "fuzz/targets/$target.swift" ]] || { echo "fuzz/run.sh: no target '$target' (fuzz/targets/*.swift)" >&2; exit 2; }

scratch=.build-fuzz
swift build -c release --scratch-path "$scratch" --target SpadeTrain \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address >&2
build="$(swift build -c release --scratch-path "$scratch" --show-bin-path)"

# Every module map the package's modules import (C targets, Yams' CYaml, the system libraries).
maps=()
while IFS= read -r m; do maps+=(-Xcc "-fmodule-map-file=$m"); done < <(
    find "$build" -maxdepth 2 -name module.modulemap -path '*C*.build/*'
    find "$scratch/checkouts/Yams/Sources/CYaml/include" Sources/CMPI Sources/CBLAS -name module.modulemap)
objects=()
for module in SafeTensors SpadeCore SpadeNN SpadeDist SpadeData SpadeTrain Yams CYaml CImageIO CKernels; do
    while IFS= read -r o; do objects+=("$o"); done < <(find "$build/$module.build" -name '*.o')
done
cflags=()
for f in $(pkg-config --cflags ompi-c openblas); do cflags+=(-Xcc "$f"); done
exe="$scratch/fuzz-$target"
# shellcheck disable=SC2046  # pkg-config prints several flags
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name "Fuzz_$target" \
    -I "$build/Modules" -I "$scratch/checkouts/Yams/Sources/CYaml/include" -I /usr/include/libpng16 "${maps[@]}" "${cflags[@]}" \
    "fuzz/targets/$target.swift" "${objects[@]}" \
    -lpng16 -ljpeg $(pkg-config --libs ompi-c openblas) -o "$exe" >&2

# The Swift runtime's own crash handler would run inside ASan and confuse its report.
export SWIFT_BACKTRACE=enable=no
if [[ "$mode" == repro ]]; then
    exec "$exe" "${3:?fuzz/run.sh TARGET repro FILE}"
fi
corpus="$scratch/corpus/$target" crashes="$scratch/crashes/$target"
mkdir -p "$corpus" "$crashes"
cp -n "fuzz/seeds/$target"/* "$corpus"/ 2>/dev/null || true
shift 2
# -rss_limit_mb: a decoded image may legitimately take hundreds of MB; beyond 2 GB is a finding.
"$exe" -max_total_time="$mode" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix="$crashes/" "$@" "$corpus"
