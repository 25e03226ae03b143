#!/usr/bin/env bash
# PPO throughput, Dualign vs TRL's PPOTrainer, on the same tiny models, prompts and batch shape
# (launch/bench/peer_ppo.py describes the shape and how each side is timed). Rounds alternate the two;
# each prints one JSON line per side, then the medians over rounds and the per-round ratios.
#
# Usage: launch/bench/ppo.sh [ROUNDS] [WORKDIR]     (default 3 rounds in /tmp/dualign-ppo-bench)
# Needs: /tmp/peer with torch 2.13.0+cpu, transformers and trl==0.29.1; a release build of dualign.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
work=${2:-/tmp/dualign-ppo-bench}
PY=${PEER_PYTHON:-/tmp/peer/bin/python}
BIN=${DUALIGN_BIN:-.build/release/dualign}
SHAPE=(--batch 16 --mini-batch 8 --micro 4 --epochs 2 --response-length 32 --warmup 1 --repeats 3)
mkdir -p "$work"
[ -f "$work/prompts.jsonl" ] || "$PY" launch/bench/peer_ppo.py --make "$work" >/dev/null 2>&1

# The same run in Dualign: 4 rollouts of 16 episodes (1 warm-up), 2 PPO epochs of 2 mini-batches of 8 (micro-batches
# of 4), 32 new tokens, no stop token, a separate critic from the value model, a frozen reference (full fine-tuning).
cat > "$work/dualign.yaml" <<EOF
model: $work/policy
outputDir: $work/dualign-run
seed: 0
data:
  maxLength: 64
  maxPromptLength: 32
  datasets:
    - schema: tokens
      paths: [$work/prompts.jsonl]
optimizer: {globalBatchSize: 8, microBatchSize: 4, maxSteps: 16, learningRate: 3.0e-6, schedule: constant}
checkpoint: {every: 0}
ppo:
  rewardModel: $work/reward
  critic: model
  criticModel: $work/value
  criticLearningRate: 3.0e-6
  rolloutBatchSize: 16
  ppoEpochs: 2
  maxNewTokens: 32
  generationBatchSize: 16
  klCoefficient: 0.05
EOF

results=()
for r in $(seq 1 "$rounds"); do
    rm -rf "$work/dualign-run"
    OPENBLAS_NUM_THREADS=2 "$BIN" train ppo --config "$work/dualign.yaml" >/dev/null 2>"$work/dualign.log"
    d=$("$PY" launch/bench/peer_ppo.py --dualign "$work/dualign-run/metrics.jsonl" --warmup 1)
    echo "round $r: $d"
    p=$(OMP_WAIT_POLICY=PASSIVE "$PY" launch/bench/peer_ppo.py --run "$work" "${SHAPE[@]}" --threads 2 2>"$work/peer.log" | tail -n 1)
    echo "round $r: $p"
    results+=("$d" "$p")
done
printf '%s\n' "${results[@]}" | "$PY" -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
d = [r for r in rows if r["peer"] == "dualign"]; p = [r for r in rows if r["peer"] == "trl-ppo"]
for key in ["rollout_generated_tokens_per_s", "update_tokens_per_s"]:
    dm, pm = statistics.median(r[key] for r in d), statistics.median(r[key] for r in p)
    ratios = [a[key] / b[key] for a, b in zip(d, p)]
    print(f"{key}: dualign {dm:.1f}, TRL {pm:.1f}, ratio median {statistics.median(ratios):.2f} (rounds {min(ratios):.2f}–{max(ratios):.2f})")
'
