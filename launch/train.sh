#!/usr/bin/env bash
# Launches `dualign train` (or `align`) on this machine under mpirun with the binding and BLAS-thread
# rules that are fastest here: N ranks bound one per core, each with cores/N BLAS threads (OpenBLAS
# sizes its pool from the affinity mask, so a bound rank cannot use more anyway). One rank runs
# without mpirun and uses every core. Rerun the same command to resume from the newest checkpoint.
#
# Usage: launch/train.sh TASK CONFIG.yaml [--ranks N] [-- extra dualign arguments, e.g. --set key=value]
#   TASK: sft | dpo | reward | cost | ppo (dualign train), or mocan | pecan | sacpo | primal-dual | ppo-lag | sail | dp-rlhf (dualign align)
# Environment: DUALIGN_BIN (default .build/release/dualign), MPIRUN_ARGS (extra mpirun flags,
#   e.g. "--hostfile cluster/hostfile.example" on a cluster), DUALIGN_DATA (the data root; default: what
#   `launch/assets.sh data` resolves; passed to every rank).
set -euo pipefail
cd "$(dirname "$0")/.."

task=${1:?usage: launch/train.sh TASK CONFIG.yaml [--ranks N] [-- args]}
config=${2:?usage: launch/train.sh TASK CONFIG.yaml [--ranks N] [-- args]}
shift 2
ranks=$(nproc)
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --ranks) ranks=$2; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        *) extra+=("$1"); shift ;;
    esac
done

case "$task" in
    mocan|pecan|sacpo|primal-dual|ppo-lag|sail|dp-rlhf) command=(align "$task") ;;
    *) command=(train "$task") ;;
esac

# The public data root: configs name it as $DUALIGN_DATA (verified, or downloaded, by the asset script).
DUALIGN_DATA="$(launch/assets.sh data)"
export DUALIGN_DATA

BIN=${DUALIGN_BIN:-.build/release/dualign}
if [ ! -x "$BIN" ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
    swift build -c release
fi

cores=$(nproc)
threads=$(( cores / ranks ))
[ "$threads" -ge 1 ] || threads=1

if [ "$ranks" -eq 1 ]; then
    export OPENBLAS_NUM_THREADS=$cores
    exec "$BIN" "${command[@]}" --config "$config" "${extra[@]}"
fi

# Failure detection from the config (distributed.oobKeepalive*): how soon a silent host ends the job.
mapfile -t detection < <("$BIN" launch-flags --config "$config" "${extra[@]}" | tr ' ' '\n')

# More ranks than cores needs --oversubscribe (and then no binding); root needs --allow-run-as-root.
binding=(--bind-to core --map-by core)
[ "$ranks" -le "$cores" ] || binding=(--oversubscribe --bind-to none)
# shellcheck disable=SC2086
exec mpirun --allow-run-as-root "${binding[@]}" "${detection[@]}" -np "$ranks" -x OPENBLAS_NUM_THREADS=$threads -x DUALIGN_DATA \
    ${DUALIGN_CACHE:+-x DUALIGN_CACHE} ${MPIRUN_ARGS:-} \
    "$BIN" "${command[@]}" --config "$config" --set distributed.threads=$threads "${extra[@]}"
