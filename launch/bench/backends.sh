#!/usr/bin/env bash
# backends.sh - the DPO step under each matrix backend beside the PyTorch peer, alternated run by run:
# dualign bench (DUALIGN_MATMUL=openblas), the same with onednn (and blis when installed), then
# shared/bench/peer_dpo.py, RUNS rounds. Prints each variant's median tokens/s and the median of the
# per-round ratios to the peer and to OpenBLAS (docs/benchmarks.md, "Matrix backends").
#
# usage: launch/bench/backends.sh [-n RUNS] [-o OUTDIR] CONFIG [dualign bench options...]
#   e.g. launch/bench/backends.sh -n 5 tiny
#        launch/bench/backends.sh -n 5 smollm2-135m --pairs 2 --steps 5 --warmup 2
# OPENBLAS_CORETYPE is passed through as the environment has it (never set here).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=5
out=/tmp/dualign-backends-$(date -u +%Y%m%dT%H%M%S)
while getopts "n:o:h" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    o) out=$OPTARG ;;
    *) sed -n '2,11p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
config=${1:?config (tiny or smollm2-135m)}; shift
bin=${DUALIGN_BIN:-.build/release/dualign}
peer=${PEER_PYTHON:-/tmp/peer/bin/python}
peer_dpo=${PEER_DPO:-/work/shared/bench/peer_dpo.py}
mkdir -p "$out"
backends=(openblas onednn)
ldconfig -p 2>/dev/null | grep -q "libblis.so.4" && [[ ${WITH_BLIS:-0} == 1 ]] && backends+=(blis)
peer_args=(--config "$config" --threads 2)
# The peer takes the same --pairs/--steps/--warmup as dualign bench.
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[$i]} in --pairs|--steps|--warmup|--seq) peer_args+=("${args[$i]}" "${args[$((i + 1))]}") ;; esac
done
echo "backends: $config, $runs rounds of ${backends[*]} peer; results in $out" >&2
for ((r = 1; r <= runs; r++)); do
  for b in "${backends[@]}"; do
    DUALIGN_MATMUL=$b "$bin" bench --config "$config" "$@" --json | tail -n 1 >>"$out/$b.jsonl"
  done
  OMP_WAIT_POLICY=PASSIVE "$peer" "$peer_dpo" "${peer_args[@]}" 2>>"$out/peer.err" | tail -n 1 >>"$out/peer.jsonl"
  echo "backends: round $r/$runs done" >&2
done
python3 - "$out" "${backends[@]}" <<'PY'
import json, statistics, sys
out, backends = sys.argv[1], sys.argv[2:]
def load(name):
    return [json.loads(l) for l in open(f"{out}/{name}.jsonl") if l.strip().startswith("{")]
peer = [r["policy_tokens_per_s"] for r in load("peer")]
base = [r["tokensPerSecond"] for r in load("openblas")]
print(f"peer (PyTorch eager): median {statistics.median(peer):.1f} tokens/s over {len(peer)} runs")
for b in backends:
    rows = load(b)
    tps = [r["tokensPerSecond"] for r in rows]
    n = min(len(tps), len(peer), len(base))
    vs_peer = statistics.median(tps[i] / peer[i] for i in range(n))
    vs_base = statistics.median(tps[i] / base[i] for i in range(n))
    med = lambda k: statistics.median(r[k] for r in rows)
    mach = [r["machineMFU"] for r in rows if r.get("machineMFU") is not None]
    print(f"{b:9s} median {statistics.median(tps):8.1f} tokens/s  step {med('stepSeconds'):.3f} s (fwd {med('forwardSeconds'):.3f}, "
          f"bwd {med('backwardSeconds'):.3f}, opt {med('optimizerSeconds'):.3f})  MFU {100*med('mfu'):.1f} % of {med('peakGFLOPS'):.0f} GFLOP/s"
          + (f", {100*statistics.median(mach):.1f} % of machine {statistics.median(r['machinePeakGFLOPS'] for r in rows):.0f}" if mach else "")
          + f"  vs peer {vs_peer:.2f}x  vs openblas {vs_base:.2f}x  (rounds: {', '.join(f'{tps[i]/peer[i]:.2f}' for i in range(n))})")
PY
