#!/usr/bin/env bash
# Private alignment of SmolLM2-135M-Instruct at ε ∈ {1, 2, 4, 8, ∞} (δ = 1/N of each stage's share), 2 ranks:
#   1. dp-rlhf.yaml   the DP-RLHF pipeline (`dualign align dp-rlhf`: DP-SFT → DP reward model → DP-PPO on
#                     disjoint shares of the private pairs) at each ε; ∞ trains the same stages without DP;
#   2. dp-dpo.yaml    DP-DPO on all the private pairs at the same ε values;
#   3. `dualign eval` of the original model and every trained model on held-out AlpacaEval instructions (left
#      out of every share): mean reward and the reward win rate against the original model, with bootstrap
#      95 % intervals. The judge is the safety recipe's reward model (trained without DP, on public data),
#      the same for every ε, as the paper scores TL;DR with one non-private reward model.
# Every step resumes where it stopped when the script is run again. Results: runs/dp/eval/{eval.json,report.md};
# docs/privacy.md ("DP-RLHF on SmolLM2") discusses them.
#
# Usage: launch/recipes/dp/run.sh [--ranks N] [--epsilons "1 2 4 8 inf"]   (environment: DUALIGN_BIN, MPIRUN_ARGS)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ranks=2; epsilons="1 2 4 8 inf"
while [ $# -gt 0 ]; do
    case "$1" in
        --ranks) ranks=${2:?--ranks needs a number}; shift 2 ;;
        --epsilons) epsilons=${2:?--epsilons needs a list, e.g. "1 4 inf"}; shift 2 ;;
        *) echo "unknown argument $1 (use --ranks N, --epsilons LIST)" >&2; exit 2 ;;
    esac
done
recipe=launch/recipes/dp
export PATH="/opt/swift/usr/bin:$PATH"

launch/setup.sh
DUALIGN_DATA="$(launch/assets.sh data)"   # the public data root the configs name as $DUALIGN_DATA
export DUALIGN_DATA
BIN=${DUALIGN_BIN:-.build/release/dualign}
[ -n "${DUALIGN_BIN:-}" ] || swift build -c release
export DUALIGN_BIN=$BIN
# The judge and the cost model `dualign eval` needs: the safety recipe's score models (trained without DP).
for task in reward cost; do
    [ -f "runs/safety/$task/final.gguf" ] || launch/train.sh "$task" "launch/recipes/safety/$task.yaml" --ranks "$ranks"
done

for eps in $epsilons; do
    if [ "$eps" = inf ]; then privacy=(--set "dp={}"); else privacy=(--set "dp.epsilon=$eps"); fi
    [ -f "runs/dp/dp-rlhf-eps$eps/align.json" ] ||
        launch/train.sh dp-rlhf "$recipe/dp-rlhf.yaml" --ranks "$ranks" -- --set "outputDir=runs/dp/dp-rlhf-eps$eps" "${privacy[@]}"
    [ -f "runs/dp/dp-dpo-eps$eps/final.gguf" ] ||
        launch/train.sh dpo "$recipe/dp-dpo.yaml" --ranks "$ranks" -- --set "outputDir=runs/dp/dp-dpo-eps$eps" "${privacy[@]}"
done

# shellcheck source=launch/ranks.sh
source launch/ranks.sh      # on_ranks: dualign directly with one rank, else under mpirun; sets $threads
eval_args=(eval --out runs/dp/eval --reward-model runs/safety/reward/final.gguf --cost-model runs/safety/cost/final.gguf
           --advbench none --harmbench none --xstest none --physical-safety none --coconot none
           --max-prompts 40 --max-new-tokens 48 --batch-size 16 --threads "$threads")
for eps in $epsilons; do
    eval_args+=(--model "dp-sft-eps$eps=runs/dp/dp-rlhf-eps$eps/stages/1-sft/final.gguf"
                --model "dp-ppo-eps$eps=runs/dp/dp-rlhf-eps$eps/stages/3-ppo/final.gguf"
                --model "dp-dpo-eps$eps=runs/dp/dp-dpo-eps$eps/final.gguf")
done
on_ranks "${eval_args[@]}"
cat runs/dp/eval/report.md
