#!/usr/bin/env bash
# The README's first command: set up, build, train.
#
#   launch/train.sh [spade-dist train arguments]
#
# 1. launch/setup.sh: installs the missing system packages (OpenMPI, OpenBLAS, libpng,
#    libjpeg-turbo; apt-get, with sudo when not root) and checks the Swift toolchain.
# 2. swift build -c release  (the binary is .build/release/spade-dist)
# 3. launch/run-node.sh -- train [arguments]: mpirun with one rank per CPU.
#    Without arguments this trains the embedded tiny config on generated synthetic
#    scenes (300 steps, 64x64) into runs/tiny/ and prints where the results are.
#
# Examples: launch/train.sh --steps 50
#           launch/train.sh --config configs/small-128.yaml --resume auto
# Ranks/threads other than one rank per CPU: use launch/run-node.sh directly (see its header).

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[train] %s\n' "$*"; }

say "in $root"
say "step 1/3: system packages and toolchain (launch/setup.sh)"
launch/setup.sh
say "step 2/3: build (swift build -c release)"
say "+ swift build -c release"
swift build -c release
say "step 3/3: train (launch/run-node.sh -- train${*:+ $*})"
launch/run-node.sh -- train "$@"
cat <<'MSG'
[train] done. Look at:
[train]   runs/tiny/index.html         sample grids (label | generated | real) and loss curves
[train]   runs/tiny/samples/           the same grids as PNG
[train]   runs/tiny/checkpoints/       safetensors checkpoints (latest.safetensors -> newest)
[train]   tensorboard --logdir runs    (TensorBoard event files are in the run directory)
[train] (the paths are for the default config; with --config the run directory is runs/<name>)
MSG
