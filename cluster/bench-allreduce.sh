#!/usr/bin/env bash
# bench-allreduce.sh - all-reduce time across simulated hosts (TCP) vs shared memory on one host.
#
# usage: cluster/bench-allreduce.sh [-b BINARY] [-n FLOATS[,FLOATS...]] [-k CALLS] [-r ROUNDS] [-c CONFIGS]
#   -b  the dualign binary (default: $DUALIGN_BINARY, else .build/release/dualign of this package)
#   -n  all-reduce sizes in floats (default 1,65536,1048576: latency, 256 KiB, 4 MiB)
#   -k  timed all-reduces per run (default: about 2e7/FLOATS, between 20 and 1000)
#   -r  rounds (default 5); the configurations take turns within a round, so drift on a shared
#       machine hits them alike, and the table shows the median over the rounds
#   -c  configurations (default tcp-2hosts,tcp-4hosts,shm-1host,tcp-1host):
#         tcp-2hosts  2 hosts x 1 rank: TCP over veth + bridge
#         tcp-4hosts  4 hosts x 1 rank
#         shm-1host   1 host x 2 ranks: shared memory (btl vader,self)
#         tcp-1host   1 host x 2 ranks: TCP without a network in between (btl tcp,self)
#
# Each run is 'netns-cluster.sh run … dualign comm-check --bench K --elements N'; comm-check prints the
# slowest rank's median time per all-reduce, plain ("blocking") and with the collective timeout
# watched, as the trainer runs them. Needs root; prints a markdown table. Runs take ~1-3 s each.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cluster=$here/netns-cluster.sh
binary=${DUALIGN_BINARY:-$here/../.build/release/dualign}
sizes=1,65536,1048576
calls=""
rounds=5
configs=tcp-2hosts,tcp-4hosts,shm-1host,tcp-1host

while getopts "b:n:k:r:c:h" opt; do
  case $opt in
    b) binary=$OPTARG ;;
    n) sizes=$OPTARG ;;
    k) calls=$OPTARG ;;
    r) rounds=$OPTARG ;;
    c) configs=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
[[ -x $binary ]] || { echo "bench-allreduce: no dualign binary at $binary (swift build -c release, or -b)" >&2; exit 2; }
IFS=, read -r -a sizes <<<"$sizes"
IFS=, read -r -a configs <<<"$configs"
export DNC_PREFIX=${DNC_PREFIX:-bench$$}
export OPENBLAS_NUM_THREADS=1

bench_once() {  # bench_once CONFIG FLOATS CALLS -> "blocking_us watched_us"
  local hosts=1 slots=2 btl="" line
  case $1 in
    tcp-2hosts) hosts=2 slots=1 ;;
    tcp-4hosts) hosts=4 slots=1 ;;
    shm-1host) btl=vader,self ;;
    tcp-1host) btl=tcp,self ;;
    *) echo "bench-allreduce: unknown configuration '$1'" >&2; exit 2 ;;
  esac
  line=$(DNC_SLOTS=$slots DNC_BTL=$btl "$cluster" run "$hosts" --timeout 300 -- \
    -np $((hosts * slots)) "$binary" comm-check --bench "$3" --elements "$2" | grep '^comm-check bench') ||
    { echo "bench-allreduce: $1 with $2 floats failed" >&2; exit 1; }
  sed -n 's/.*: blocking median \([0-9.]*\) .*; [a-z]* median \([0-9.]*\) .*/\1 \2/p' <<<"$line"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A blocking watched
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((round = 1; round <= rounds; round++)); do
  for n in "${sizes[@]}"; do
    k=${calls:-$(awk -v n="$n" 'BEGIN {k = int(2e7 / n); print (k < 20) ? 20 : (k > 1000) ? 1000 : k}')}
    for c in "${configs[@]}"; do
      result=$(bench_once "$c" "$n" "$k")
      read -r b w <<<"$result"
      blocking[$c,$n]+=" $b"
      watched[$c,$n]+=" $w"
      echo "round $round: $c $n floats x $k: blocking $b us, watched $w us" >&2
    done
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "| configuration | floats | all-reduce, median (us) | with timeout watched (us) | vs shm-1host | rounds |"
echo "|---|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  shm=""
  if [[ -n ${blocking[shm-1host,$n]:-} ]]; then shm=$(median <<<"${blocking[shm-1host,$n]}"); fi
  for c in "${configs[@]}"; do
    b=$(median <<<"${blocking[$c,$n]}")
    w=$(median <<<"${watched[$c,$n]}")
    ratio=$([[ -n $shm ]] && awk -v b="$b" -v s="$shm" 'BEGIN {printf "%.1fx", b / s}' || echo -)
    echo "| $c | $n | $b | $w | $ratio | $rounds |"
  done
done
