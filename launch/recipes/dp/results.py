#!/usr/bin/env python3
"""The DP sweep's table: per ε, the ε each stage spent (align.json, dp-dpo's metrics) and, on held-out
AlpacaEval instructions, each model's mean reward under the judge and its reward win rate against the
original model, with the bootstrap 95 % intervals and n of `dualign eval` (runs/dp/eval/eval.json, plus models
evaluated later on the same settings in runs/dp/eval-*/eval.json).

Usage: launch/recipes/dp/results.py [RUNS_DIR]   (default runs/dp); prints markdown.
"""
import json
import sys
from pathlib import Path

runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/dp")
evaluation = json.loads((runs / "eval" / "eval.json").read_text())
models = {m["name"]: m for m in evaluation["models"]}
# Models evaluated later in their own runs/dp/eval-* directories (same prompts, same greedy reference).
for extra in sorted(runs.glob("eval-*/eval.json")):
    later = json.loads(extra.read_text())
    if later["reference"].get("metrics") != evaluation["reference"].get("metrics"):
        sys.exit(f"{extra}: its reference answers differ from runs/dp/eval's; evaluate on the same settings")
    models.update({m["name"]: m for m in later["models"] if m["name"] not in models})


def interval(x, digits=2):
    return f"{x['value']:.{digits}f} [{x['lo']:.{digits}f}, {x['hi']:.{digits}f}]"


def reward(name):
    m = models.get(name)
    if m is None:
        return "–", "–"
    mean = m["metrics"]["sets"]["alpacaeval"]["meanReward"]
    win = m["comparison"]["sets"]["alpacaeval"]["rewardWinRate"]
    return interval(mean), interval(win)


def spent(eps):
    """ε of the pipeline (max over stages) and of DP-DPO, as the runs recorded them."""
    if eps == "inf":
        return "∞", "∞"
    align = json.loads((runs / f"dp-rlhf-eps{eps}" / "align.json").read_text())
    pipeline = align["privacy"]["epsilon"]
    stages = ", ".join(f"{k} {v['epsilon']:.2f}" for k, v in sorted(align["privateStages"].items()))
    metrics = runs / f"dp-dpo-eps{eps}" / "metrics.jsonl"
    if not metrics.exists():
        return f"{pipeline:.2f} ({stages})", "not run"
    last = [json.loads(line) for line in metrics.read_text().splitlines()]
    dpo = [r["dp/epsilon"] for r in last if "dp/epsilon" in r][-1]
    return f"{pipeline:.2f} ({stages})", f"{dpo:.2f}"


reference = evaluation["reference"]
ref_mean = reference["metrics"]["sets"]["alpacaeval"]["meanReward"] if "metrics" in reference else None
n = models[next(iter(models))]["metrics"]["sets"]["alpacaeval"]["meanReward"]["n"]
print(f"Held-out AlpacaEval instructions (n = {n}), greedy, judge: {evaluation['settings'].get('rewardModel', 'the reward model')}.")
if ref_mean:
    print(f"Original model's mean reward: {interval(ref_mean)}.\n")
print("| ε | ε spent: DP-RLHF (per stage) | DP-SFT mean reward | DP-SFT win rate | DP-PPO mean reward | DP-PPO win rate | DP-DPO ε | DP-DPO mean reward | DP-DPO win rate |")
print("|---|---|---|---|---|---|---|---|---|")
for eps in ["1", "2", "4", "8", "inf"]:
    if not (runs / f"dp-rlhf-eps{eps}" / "align.json").exists():
        continue
    pipeline, dpo = spent(eps)
    sft, ppo, dpo_reward = reward(f"dp-sft-eps{eps}"), reward(f"dp-ppo-eps{eps}"), reward(f"dp-dpo-eps{eps}")
    label = "∞" if eps == "inf" else eps
    print(f"| {label} | {pipeline} | {sft[0]} | {sft[1]} | {ppo[0]} | {ppo[1]} | {dpo} | {dpo_reward[0]} | {dpo_reward[1]} |")
