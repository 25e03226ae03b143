#!/usr/bin/env bash
# run-all.sh - reproduces docs/benchmarks.md: Dualign's benchmarks beside the PyTorch / transformers peers.
#
# usage: launch/bench/run-all.sh [-n RUNS] [-b DUALIGN] [-p PEER_PYTHON] [-o OUTDIR] [SECTION ...]
#   sections (default: all, in this order):
#     dpo-tiny      dualign bench --config tiny            vs shared/bench/peer_dpo.py --config tiny
#     dpo-smollm2   dualign bench --config smollm2-135m     vs peer_dpo.py --config smollm2-135m   (2 pairs, 5+2 steps)
#     dpo-ranks     1 process × 2 threads vs mpirun -np 2 × 1 thread (tiny and smollm2-135m)
#     generate      dualign bench --kind generate --batch 1|16 (greedy) and --batch 2 --samples 8 --temperature 1
#                   (MoCAN-style sampling) vs launch/bench/peer_generate.py (num_return_sequences 8)
#     tokenize      dualign bench --kind tokenize
#     checkpoint    dualign bench --kind checkpoint
#
# Dualign and its peer run in turn (A B A B …), RUNS times each (default 5), so a drift in the machine's
# speed hits both alike. Every run's JSON line goes to OUTDIR (default /tmp/dualign-bench-<date>) and a
# summary of medians (over runs) and the median of the per-pair ratios is printed at the end.
# Extra environment is passed through, e.g. OPENBLAS_CORETYPE=SkylakeX launch/bench/run-all.sh dpo-tiny.
#
# Needs: a release build (swift build -c release), the model (launch/assets.sh model), the peer venv
# (python3 -m venv /tmp/peer && /tmp/peer/bin/pip install "torch==2.13.0+cpu" transformers), mpirun.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=5
bin=.build/release/dualign
peer=/tmp/peer/bin/python
out=/tmp/dualign-bench-$(date -u +%Y%m%dT%H%M%S)
peer_dpo=${PEER_DPO:-/work/shared/bench/peer_dpo.py}
while getopts "n:b:p:o:h" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    b) bin=$OPTARG ;;
    p) peer=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
sections=("$@")
[[ ${#sections[@]} -gt 0 ]] || sections=(dpo-tiny dpo-smollm2 dpo-ranks generate tokenize checkpoint)
[[ -x $bin ]] || { echo "run-all: no dualign binary at $bin (swift build -c release, or -b)" >&2; exit 2; }
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
mpi=(mpirun -np 2 --allow-run-as-root)
if [[ -n ${OPENBLAS_CORETYPE:-} ]]; then mpi+=(-x OPENBLAS_CORETYPE); fi
echo "run-all: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%FT%TZ); results in $out" >&2

# pair NAME 'COMMAND_A' 'COMMAND_B': runs A then B, RUNS times; each run appends its last output line to NAME.{a,b}.jsonl.
pair() {
  local name=$1 a=$2 b=$3 i
  for ((i = 1; i <= runs; i++)); do
    echo "run-all: $name $i/$runs" >&2
    bash -c "$a" 2>>"$out/$name.err" | tail -n 1 >>"$out/$name.a.jsonl"
    if [[ -n $b ]]; then bash -c "$b" 2>>"$out/$name.err" | tail -n 1 >>"$out/$name.b.jsonl"; fi
  done
}

hf=$out/smollm2-hf
for s in "${sections[@]}"; do
  case $s in
    dpo-tiny)
      pair dpo-tiny "$bin bench --config tiny --json" "$peer $peer_dpo --config tiny --threads 2" ;;
    dpo-smollm2)
      pair dpo-smollm2 "$bin bench --config smollm2-135m --pairs 2 --steps 5 --warmup 2 --json" \
                       "$peer $peer_dpo --config smollm2-135m --pairs 2 --steps 5 --warmup 2 --threads 2" ;;
    dpo-ranks)
      pair ranks-tiny "${mpi[*]} $bin bench --config tiny --json" "$bin bench --config tiny --json"
      pair ranks-smollm2 "${mpi[*]} $bin bench --config smollm2-135m --pairs 2 --steps 5 --warmup 2 --json" \
                         "$bin bench --config smollm2-135m --pairs 2 --steps 5 --warmup 2 --json" ;;
    generate)
      [[ -f $hf/model.safetensors ]] || "$bin" export --model smollm2-135m --out "$hf" --format safetensors >&2
      for batch in 1 16; do
        "$bin" bench --kind generate --batch "$batch" --steps 1 --warmup 0 --write-prompts "$out/prompts$batch.json" >&2
        pair "generate-b$batch" "$bin bench --kind generate --batch $batch --json" \
                                "$peer launch/bench/peer_generate.py --model $hf --prompts $out/prompts$batch.json --threads 2"
      done
      mocan="--batch 2 --samples 8 --temperature 1"
      "$bin" bench --kind generate $mocan --steps 1 --warmup 0 --write-prompts "$out/prompts2x8.json" >&2
      pair generate-mocan "$bin bench --kind generate $mocan --json" \
                          "$peer launch/bench/peer_generate.py --model $hf --prompts $out/prompts2x8.json --threads 2" ;;
    tokenize)
      pair tokenize "$bin bench --kind tokenize --json" "" ;;
    checkpoint)
      runs_saved=$runs; runs=1
      pair checkpoint "$bin bench --kind checkpoint --steps 3 --json" ""
      runs=$runs_saved ;;
    *) echo "run-all: unknown section $s" >&2; exit 2 ;;
  esac
done

# Summary: medians over runs of each figure, and the median of the per-pair ratios A/B.
python3 - "$out" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
def load(p):
    rows = []
    if os.path.exists(p):
        for line in open(p):
            line = line.strip()
            if line.startswith("{"):
                try: rows.append(json.loads(line))
                except ValueError: pass
    return rows
def med(rows, key):
    xs = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return statistics.median(xs) if xs else float("nan")
keys = {"dpo-tiny": ("tokensPerSecond", "policy_tokens_per_s"), "dpo-smollm2": ("tokensPerSecond", "policy_tokens_per_s"),
        "ranks-tiny": ("tokensPerSecond", "tokensPerSecond"), "ranks-smollm2": ("tokensPerSecond", "tokensPerSecond"),
        "generate-b1": ("tokensPerSecond", "tokens_per_s"), "generate-b16": ("tokensPerSecond", "tokens_per_s"),
        "generate-mocan": ("tokensPerSecond", "tokens_per_s")}
for name, (ka, kb) in keys.items():
    a, b = load(f"{out}/{name}.a.jsonl"), load(f"{out}/{name}.b.jsonl")
    if not a: continue
    ratios = [x[ka] / y[kb] for x, y in zip(a, b) if x.get(ka) and y.get(kb)]
    extra = ""
    if name.startswith("dpo") or name.startswith("ranks"):
        extra = "  A: step %.3f s, fwd %.3f, bwd %.3f, opt %.3f, MFU %.1f%%" % (
            tuple(med(a, k) for k in ("stepSeconds", "forwardSeconds", "backwardSeconds", "optimizerSeconds")) + (100 * med(a, "mfu"),))
        if name.startswith("ranks"):
            extra += ", allreduce %.3f s (%.1f%% of step, %.3f s alone)" % (med(a, "allReduceSeconds"), 100 * med(a, "allReduceShare"), med(a, "allReduceAloneSeconds"))
    print(f"{name:14s} A {med(a, ka):9.1f}  B {med(b, kb):9.1f} tokens/s  A/B {statistics.median(ratios) if ratios else float('nan'):.2f} (median of {len(ratios)} pairs){extra}")
t = load(f"{out}/tokenize.a.jsonl")
if t:
    print(f"tokenize       cold {med(t, 'coldMBps'):.2f} MB/s, warm {med(t, 'warmMBps'):.2f} MB/s ({len(t)} runs)")
for c in load(f"{out}/checkpoint.a.jsonl"):
    for m in c["modes"]:
        print(f"checkpoint     {m['mode']:8s} ratio {m['ratio']:.3f} (weights {m['weightsRatio']:.3f}, Adam {m['optimizerRatio']:.3f}), write {m['writeMBps']:.0f} MB/s, read {m['readWarmMBps']:.0f} MB/s cached, {m['readColdMBps']:.0f} MB/s cold")
PY
