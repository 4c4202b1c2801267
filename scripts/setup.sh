#!/usr/bin/env bash
# setup.sh — make sure this Debian/Ubuntu machine has what mulch's build,
# tests, benchmarks and CI need. Quiet and quick when everything is there;
# installs what is missing when run as root; otherwise prints the command.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian package names. Tools: compilers (clang, and below the runtime
# libraries of its version for the libFuzzer targets: scripts/fuzz.sh),
# cmake+ninja, pkg-config, python3 (a preload test runs it). Libraries:
# libatomic_ops (linked), cmocka (tests), and the peers the benchmarks
# compare against (Boehm GC, mimalloc, jemalloc). valgrind and gnuplot for
# the performance work.
PACKAGES=(
    cmake
    ninja-build
    gcc
    g++
    clang
    python3
    libc6-dev
    pkg-config
    libatomic-ops-dev
    libcmocka-dev
    libgc-dev
    libmimalloc-dev
    libjemalloc-dev
    valgrind
    gnuplot-nox
)

# Lines "<package> installed" for every installed package among the arguments.
installed_list() {
    dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null | grep ' installed$' || true
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup.sh: dpkg-query not found: this script knows Debian/Ubuntu only." >&2
    echo "setup.sh: install the equivalents of: ${PACKAGES[*]}" >&2
    exit 1
fi

# Installs the missing ones among the arguments (as root), or prints the
# command and fails.
ensure_packages() {
    local installed pkg
    local -a missing=() still=()
    installed=$(installed_list "$@")
    for pkg in "$@"; do
        grep -qx "$pkg installed" <<<"$installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    local install_cmd="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup.sh: missing packages: ${missing[*]}" >&2
        echo "setup.sh: run as root:" >&2
        echo "  apt-get update && DEBIAN_FRONTEND=noninteractive $install_cmd" >&2
        exit 1
    fi

    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local -a apt_opts=(-q -o DPkg::Lock::Timeout=300)
    apt-get "${apt_opts[@]}" update </dev/null
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" </dev/null

    installed=$(installed_list "${missing[@]}")
    for pkg in "${missing[@]}"; do
        grep -qx "$pkg installed" <<<"$installed" || still+=("$pkg")
    done
    if [ "${#still[@]}" -ne 0 ]; then
        echo "setup.sh: still missing after apt-get: ${still[*]}" >&2
        exit 1
    fi
    echo "setup.sh: done"
}

ensure_packages "${PACKAGES[@]}"

# libFuzzer's runtime comes with the clang of the same major version
# (libclang-rt-14-dev on Debian 12, -19- on Debian 13): ask the clang that
# is now installed. Where `clang` is not yet a command (non-root run with
# clang missing), the message above has already stopped us.
clang_major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
if [ -n "$clang_major" ]; then
    ensure_packages "libclang-rt-${clang_major}-dev"
fi
