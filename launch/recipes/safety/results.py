#!/usr/bin/env python3
"""Collects the safety recipe's numbers into one machine-readable file (docs/results/safety.json).

Reads runs/safety/eval/eval.json (every model's rates with n and 95 % intervals, win rates, the guarantee
checks, budgets), every other runs/safety/eval-*/eval.json (further evaluations: the guarantee check on sampled
answers, baselines evaluated in another sitting) and the score models' metrics (held-out accuracy per source: the training run's own
held-out pairs per source, and the sources they never trained on from the *-heldout runs), and writes them without the
sample answers. Usage: launch/recipes/safety/results.py [RUNS_DIR] [OUT_JSON]
"""
import json
import os
import sys


def last_eval(metrics_path):
    """The last line of a metrics.jsonl that carries eval/ keys, as {key: value}."""
    found = {}
    if not os.path.exists(metrics_path):
        return None
    with open(metrics_path) as f:
        for line in f:
            row = json.loads(line)
            ev = {k: v for k, v in row.items() if k.startswith("eval/") or k.startswith("count/")}
            if ev:
                found = dict(ev, step=row.get("step"))
    return found


def main():
    runs = sys.argv[1] if len(sys.argv) > 1 else "runs/safety"
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/results/safety.json"
    with open(os.path.join(runs, "eval", "eval.json")) as f:
        ev = json.load(f)
    ev.pop("samples", None)
    further = {}
    for name in sorted(os.listdir(runs)):
        path = os.path.join(runs, name, "eval.json")
        if name.startswith("eval-") and os.path.exists(path):
            with open(path) as f:
                further[name] = json.load(f)
            further[name].pop("samples", None)
    score_models = {}
    for name in ("reward", "cost"):
        score_models[name] = {
            "trainingSourcesHeldOut": last_eval(os.path.join(runs, name, "metrics.jsonl")),
            "neverSeenSources": last_eval(os.path.join(runs, name + "-heldout", "metrics.jsonl")),
        }
    stages = {}
    for name in ("sft", "reward", "cost"):
        path = os.path.join(runs, name, "metrics.jsonl")
        if os.path.exists(path):
            with open(path) as f:
                rows = [json.loads(line) for line in f]
            steps = [r for r in rows if "loss" in r]
            stages[name] = {"steps": len(steps), "firstLoss": steps[0]["loss"] if steps else None,
                            "lastLoss": steps[-1]["loss"] if steps else None, "finalEval": last_eval(path)}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"evaluation": ev, "furtherEvaluations": further, "scoreModels": score_models, "stages": stages}, f, indent=1, sort_keys=True)
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main()
