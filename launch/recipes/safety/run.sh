#!/usr/bin/env bash
# The safety recipe on SmolLM2-135M-Instruct, on this machine with 2 ranks (under two hours on 2 cores):
#   1. sft.yaml      SFT (LoRA) on refusal and helpful demonstrations → π_ref of every method below;
#   2. reward.yaml, cost.yaml   score models (LoRA + score head) on pairs from several sources, and their
#                    accuracy on a source they never saw (reward-heldout.yaml, cost-heldout.yaml); rejected
#                    answers for safety-tuned-llamas' harmful questions from the original model's samples;
#   3. mocan.yaml    the main method; then the same data and DPO budget for SACPO and the primal–dual
#                    baseline (and with --all PeCAN, and Safe-RLHF's PPO-Lagrangian at MoCAN's target);
#   4. `dualign eval` of the original model, the SFT model and every aligned model on held-out
#      AdvBench, HarmBench, XSTest, benign look-alike and AlpacaEval prompts, plus the held-out 20 % of
#      MoCAN's own prompt pool, and MoCAN's guarantee checked against π_ref on 200 of them.
# Every step resumes where it stopped when the script is run again. Results: runs/safety/eval/
# {eval.json,report.md,plot.png,curves.png}; docs/results.md discusses them.
#
# Usage: launch/recipes/safety/run.sh [--ranks N] [--all]   (environment: DUALIGN_BIN, MPIRUN_ARGS as launch/train.sh)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ranks=2; all=0
while [ $# -gt 0 ]; do
    case "$1" in
        --ranks) ranks=${2:?--ranks needs a number}; shift 2 ;;
        --all) all=1; shift ;;
        *) echo "unknown argument $1 (use --ranks N, --all)" >&2; exit 2 ;;
    esac
done
recipe=launch/recipes/safety
export PATH="/opt/swift/usr/bin:$PATH"

launch/setup.sh
launch/assets.sh prompts >/dev/null
DUALIGN_DATA="$(launch/assets.sh data)"   # the public data root the configs name as $DUALIGN_DATA
export DUALIGN_DATA
BIN=${DUALIGN_BIN:-.build/release/dualign}
[ -n "${DUALIGN_BIN:-}" ] || swift build -c release
export DUALIGN_BIN=$BIN

for task in sft reward cost; do
    [ -f "runs/safety/$task/final.gguf" ] || launch/train.sh "$task" "$recipe/$task.yaml" --ranks "$ranks"
done
for task in reward cost; do
    [ -f "runs/safety/$task-heldout/metrics.jsonl" ] || launch/train.sh "$task" "$recipe/$task-heldout.yaml" --ranks "$ranks"
done
# Rejected answers for safety-tuned-llamas' harmful questions from the original model's own samples,
# kept when the refusal classifier and the cost model agree they comply: pku-saferlhf safety pairs
# (safe answer ≻ sample) in runs/safety/rejected/pairs.jsonl, which the alignment configs train on
# (docs/data.md, "Rejected answers from the model's own samples").
# shellcheck source=launch/ranks.sh
source launch/ranks.sh      # on_ranks: dualign directly with one rank, else under mpirun; sets $threads
rejected_args=(rejected-samples --threads "$threads" --model smollm2-135m --cost-model runs/safety/cost/final.gguf
               --samples 2 --temperature 0.7 --top-p 0.9 --max-new-tokens 48 --max-prompts 160 --out runs/safety/rejected
               --dataset '{schema: safety-tuned-llamas, paths: [$DUALIGN_DATA/safety-tuned-llamas/safety_only_data_Instructions.json]}')
[ -f runs/safety/rejected/pairs.jsonl ] || on_ranks "${rejected_args[@]}"
methods=(mocan sacpo primal-dual)
[ "$all" -eq 1 ] && methods+=(pecan ppo-lag)
for method in "${methods[@]}"; do
    extra=()
    if [ "$method" = primal-dual ] || [ "$method" = ppo-lag ]; then
        # The primal–dual baselines aim at the expected cost MoCAN's dual asked for: d = E_ref[cost] − b.
        d=$(python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["result"]; print(-r["referenceUtility"][0] - r["margin"][0])' \
            runs/safety/mocan/stages/3-dual/stage.json)
        extra=(-- --set "align.costThreshold=$d")
    fi
    launch/train.sh "$method" "$recipe/$method.yaml" --ranks "$ranks" "${extra[@]}"
done

eval_args=(eval --out runs/safety/eval --model sft=runs/safety/sft/final.gguf --training-run runs/safety/sft
           --reward-model runs/safety/reward/final.gguf --cost-model runs/safety/cost/final.gguf
           --prompt-set "dual=$recipe/mocan.yaml" --max-prompts 64 --max-new-tokens 48 --threads "$threads")
for method in "${methods[@]}"; do eval_args+=(--run "runs/safety/$method"); done
on_ranks "${eval_args[@]}"
# MoCAN's guarantee is about improvement over π_ref (the SFT model), on held-out prompts of its own pool:
# the check runs with π_ref as the reference and only that set. The prediction is an improvement of the
# expected safety under sampling, so the answers are sampled as the dual's were (mocan.yaml:
# align.samplesPerPrompt 4, align.temperature and align.topP at their default 1), not greedy.
guarantee_args=(eval --out runs/safety/eval-guarantee --reference runs/safety/sft/final.gguf --run runs/safety/mocan
                --advbench none --harmbench none --xstest none --physical-safety none --coconot none --alpaca-eval none
                --reward-model runs/safety/reward/final.gguf --cost-model runs/safety/cost/final.gguf
                --prompt-set "dual=$recipe/mocan.yaml" --max-prompts 200 --max-new-tokens 48 --threads "$threads"
                --samples 4 --temperature 1)
on_ranks "${guarantee_args[@]}"
cat runs/safety/eval/report.md
sed -n '/^## Predicted against achieved/,/^## /p' runs/safety/eval-guarantee/report.md
launch/recipes/safety/results.py runs/safety docs/results/safety.json
