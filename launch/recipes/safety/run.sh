#!/usr/bin/env bash
# The end-to-end safety recipe on SmolLM2-135M-Instruct, on this machine with 2 ranks (about an hour
# on 2 cores): a reward model (helpfulness) and a cost model (harm), then MoCAN, SACPO and the
# primal–dual baseline on the same pairs and DPO budget, then `dualign eval` of every model against the
# reference on held-out AdvBench, HarmBench and XSTest prompts. Every step resumes where it stopped when
# the script is run again. Results: runs/safety/eval/{eval.json,report.md,plot.svg,plot.png}.
#
# Usage: launch/recipes/safety/run.sh [--ranks N]    (environment: DUALIGN_BIN, MPIRUN_ARGS as launch/train.sh)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ranks=2
[ "${1:-}" = "--ranks" ] && ranks=${2:?--ranks needs a number}
recipe=launch/recipes/safety
export PATH="/opt/swift/usr/bin:$PATH"

launch/setup.sh
launch/assets.sh prompts >/dev/null
DUALIGN_DATA="$(launch/assets.sh data)"   # the public data root the configs name as $DUALIGN_DATA
export DUALIGN_DATA
BIN=${DUALIGN_BIN:-.build/release/dualign}
[ -n "${DUALIGN_BIN:-}" ] || swift build -c release
export DUALIGN_BIN=$BIN

for task in reward cost; do
    [ -f "runs/safety/$task/final.gguf" ] || launch/train.sh "$task" "$recipe/$task.yaml" --ranks "$ranks"
done
for method in mocan sacpo primal-dual; do
    launch/train.sh "$method" "$recipe/$method.yaml" --ranks "$ranks"
done

threads=$(( $(nproc) / ranks )); [ "$threads" -ge 1 ] || threads=1
eval_args=(eval --out runs/safety/eval --run runs/safety/mocan --run runs/safety/sacpo --run runs/safety/primal-dual
           --reward-model runs/safety/reward/final.gguf --cost-model runs/safety/cost/final.gguf
           --max-prompts 48 --max-new-tokens 48 --threads "$threads")
if [ "$ranks" -eq 1 ]; then
    "$BIN" "${eval_args[@]}"
else
    # shellcheck disable=SC2086
    mpirun --allow-run-as-root --bind-to core --map-by core -np "$ranks" -x OPENBLAS_NUM_THREADS=$threads -x DUALIGN_DATA \
        ${DUALIGN_CACHE:+-x DUALIGN_CACHE} ${MPIRUN_ARGS:-} \
        "$BIN" "${eval_args[@]}"
fi
cat runs/safety/eval/report.md
