#!/usr/bin/env bash
# Installs what Dualign needs on a Debian machine: system packages (Open MPI, OpenBLAS, zstd, zlib,
# librsvg for the plots), checks the Swift toolchain, and fetches the pinned model asset. Safe to run
# again: skips what is there.
#
# Usage: launch/setup.sh [--no-model]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# librsvg2-bin (rsvg-convert) renders the evaluation plots from SVG to PNG; fonts-dejavu-core gives it a font.
PACKAGES=(libopenmpi-dev openmpi-bin libopenblas-dev libzstd-dev zlib1g-dev pkg-config zstd python3-pip librsvg2-bin fonts-dejavu-core)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [ -x "$d/swift" ] && export PATH="$d:$PATH"
    done
fi
command -v swift >/dev/null 2>&1 || {
    log "error: no Swift toolchain on PATH; install Swift 6.x (swift.org/install) and put its usr/bin on PATH"
    exit 1
}

if [ "${1:-}" != "--no-model" ]; then
    launch/assets.sh model >/dev/null
fi
