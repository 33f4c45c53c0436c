# shellcheck shell=bash
# Shared apt logic for the launch scripts (sourced by launch/setup.sh and launch/cluster-sim.sh).
#
#   apt_install_missing PKG...
#
# Installs those of the Debian/Ubuntu packages PKG... that are not installed. `apt-get update`
# runs once, before the first install, and only when something is missing. As a user, sudo is
# used when it exists (`sudo -n` when there is no terminal to ask for a password on).
# Returns 0 when everything is present or was installed; calls `die` when installing failed.
#
# The sourcing script defines `say MSG` and `die MSG` (its own message prefix).
# Environment:
#   SPADE_SKIP_APT=1   do not check or install anything
#   APT_NO_APT_HINT    what to tell the user when there is no apt-get/dpkg (default: the list)
#
# Written without relying on `set -e`: a function called after `||` or in `if` runs with -e
# off, so every step that can fail is checked explicitly.

apt_install_missing() {
    if [[ "${SPADE_SKIP_APT:-0}" == 1 ]]; then
        say "SPADE_SKIP_APT=1: not checking system packages"
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
        say "no apt-get/dpkg here: ${APT_NO_APT_HINT:-make sure these are installed: $*}; continuing"
        return 0
    fi
    local missing=() p
    for p in "$@"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        say "system packages present: $*"
        return 0
    fi
    say "missing system packages: ${missing[*]}"

    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            die "not root and no sudo: run as root: apt-get update && apt-get install -y ${missing[*]}"
        fi
        if [[ -t 0 ]]; then sudo=(sudo); else sudo=(sudo -n); fi
    fi
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
    say "+ ${apt[*]} update -q"
    "${apt[@]}" update -q || die "apt-get update failed"
    # Ubuntu names libjpeg-turbo's development package libjpeg-turbo8-dev (libjpeg-dev
    # depends on the right one everywhere); use it when Debian's name is unknown.
    local i
    for i in "${!missing[@]}"; do
        if [[ "${missing[$i]}" == libjpeg62-turbo-dev ]] && ! apt-cache show libjpeg62-turbo-dev >/dev/null 2>&1; then
            say "libjpeg62-turbo-dev is not known to apt here; installing libjpeg-dev instead"
            missing[i]=libjpeg-dev
        fi
    done
    say "+ ${apt[*]} install -y -q --no-install-recommends ${missing[*]}"
    "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" || die "apt-get install failed"
}
