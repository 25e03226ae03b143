#!/usr/bin/env bash
# Installs everything (system packages, the pinned SmolLM2-135M model), builds Dualign in release
# mode, and runs the main job on this machine with sensible defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

launch/setup.sh
swift build -c release
BIN=.build/release/dualign

# The main job: a DPO-step benchmark on the small model (forward, backward, optimizer split, MFU).
"$BIN" bench --config tiny
