#!/usr/bin/env bash
# Installs what spade-dist needs and is missing, then checks the Swift toolchain.
#
#   launch/setup.sh            (launch/train.sh and launch/test.sh run it first)
#
# System packages (Debian/Ubuntu, apt-get): OpenMPI, OpenBLAS, libpng, libjpeg-turbo.
# Only missing packages are installed; `apt-get update` runs once, before the first
# install. As a user, sudo is used when it exists (non-interactively, `sudo -n`, when
# there is no terminal to ask for a password on). Nothing is installed when all are
# present, so the script is quick to re-run.
#
# Swift (>= 6.0; spade-dist is developed with 6.3) is not installed by this script:
# it prints where to get it when `swift` is not on PATH.
#
# Environment:
#   SPADE_SKIP_APT=1   do not check or install system packages

set -euo pipefail

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The runtime and build dependencies (Package.swift's system libraries).
packages=(libopenmpi-dev openmpi-bin libopenblas-dev libpng-dev libjpeg62-turbo-dev)

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

install_packages() {
    APT_NO_APT_HINT="make sure OpenMPI (mpirun, mpi.h), OpenBLAS (cblas.h, openblas.pc), libpng and libjpeg(-turbo) development files are installed" \
        apt_install_missing "${packages[@]}"
}

check_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        die "swift is not on PATH. Install Swift 6 (https://www.swift.org/install/linux/, e.g. with swiftly), then re-run"
    fi
    local version
    version="$(swift --version 2>&1 | grep -Eo 'Swift version [0-9]+(\.[0-9]+)*' | head -n1 || true)"
    say "toolchain: ${version:-unknown Swift version} ($(command -v swift))"
    local major="${version#Swift version }"
    major="${major%%.*}"
    if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 6)); then
        die "spade-dist needs Swift >= 6.0 (swift-tools-version 6.0), found ${version}"
    fi
}

install_packages
check_swift
command -v mpirun >/dev/null 2>&1 || die "mpirun not found after installing openmpi-bin"
say "mpirun: $(mpirun --version 2>/dev/null | head -n1)"
