#!/usr/bin/env bash
# netns-cluster.sh - run an Open MPI job across N simulated hosts on one Linux machine.
#
# Host i is the network namespace <prefix>-n<i> with eth0 = <subnet>.<i+1>/24, plugged into a
# bridge that lives in its own namespace <prefix>-sw. mpirun runs in one more namespace,
# <prefix>-head (<subnet>.254), and starts one orted per host through a generated rsh agent
# ('ip netns exec' + 'unshare --uts', so every host has its own hostname = its namespace name).
# The machine's own network (the root namespace) is never touched. Needs root, iproute2,
# util-linux and Open MPI 4.x on PATH.
#
# usage:
#   netns-cluster.sh up N                    create N hosts (1..200); replaces a cluster of this prefix
#   netns-cluster.sh down                    kill the cluster's processes and delete it (idempotent)
#   netns-cluster.sh run N [JOB-OPTIONS] [--] MPIRUN-ARGS
#                                            up N, mpirun in the head namespace, always down
#                                            (also on failure, INT or TERM); exit code = mpirun's
#   netns-cluster.sh mpirun [JOB-OPTIONS] [--] MPIRUN-ARGS
#                                            mpirun on a cluster that is up; reaps leftovers after
#   netns-cluster.sh env [JOB-OPTIONS]       the OMPI_* settings mpirun gets (VAR=value lines)
#   netns-cluster.sh kill-rank HOST          SIGKILL the MPI ranks (children of orted) on HOST
#   netns-cluster.sh kill-host HOST          SIGKILL every process on HOST (ranks, orted, agent)
#   netns-cluster.sh cut-link HOST           eth0 down on HOST: it goes silent (no FIN, no RST)
#   netns-cluster.sh heal-link HOST          eth0 up again
#   netns-cluster.sh ranks HOST              PIDs of the MPI ranks on HOST
#   netns-cluster.sh exec HOST CMD...        run CMD inside HOST's namespace
#   netns-cluster.sh status                  namespaces, addresses, processes
# HOST is an index (1), n1, <prefix>-n1, or the host's address; 'head' is mpirun's namespace.
# JOB-OPTIONS:
#   --fast-fail   short OOB keepalive (see DUALIGN_OOB_KEEPALIVE): a silent host ends the job in ~5 s
#   --timeout S   kill mpirun after S seconds (exit 124, or 137 if it ignores TERM); also DNC_TIMEOUT
#   --daemonize   orteds daemonize and the agent returns at once (plm_rsh_no_tree_spawn). Then a
#                 killed host always reads "lost communication with a remote daemon ... on node
#                 <host>" (otherwise the agent, mpirun's child, races it with "unable to reliably
#                 start"), but a host unreachable at launch hangs mpirun: use with --timeout.
#
# environment:
#   DNC_PREFIX   namespace prefix, [a-z][a-z0-9]{0,11}; unique per concurrent cluster (default dnc)
#   DNC_SUBNET   3 octets of the cluster's /24 (default: 10.x.y derived from the prefix)
#   DNC_SLOTS    slots (ranks) per host in the hostfile (default 1)
#   DNC_STATE    dir for hostfile, agent and session dirs (default ${TMPDIR:-/tmp}/netns-cluster.<prefix>)
#   DNC_BTL      btl list (default tcp,self; tcp,vader,self when DNC_SLOTS > 1)
#   DNC_MTU      MTU of the veths (default 1500; 9000 = jumbo frames)
#   DUALIGN_OOB_KEEPALIVE=time,intvl,probes  ORTE's OOB TCP keepalive, the only way Open MPI 4.1
#                notices a host that went silent: after at most time + intvl*probes seconds.
#                Unset: Open MPI's default 300,20,9 (~480 s), or 2,1,3 (~5 s) with --fast-fail.
#                'default' forces Open MPI's. Short values also kill a job on any network blip
#                longer than about intvl*probes seconds: use them for tests, not for production.
set -euo pipefail

PREFIX=${DNC_PREFIX:-dnc}
[[ $PREFIX =~ ^[a-z][a-z0-9]{0,11}$ ]] || { echo "netns-cluster: DNC_PREFIX must match [a-z][a-z0-9]{0,11}" >&2; exit 2; }
if [[ -n ${DNC_SUBNET:-} ]]; then
  SUBNET=$DNC_SUBNET
else
  sum=$(printf %s "$PREFIX" | cksum | cut -d' ' -f1)
  SUBNET=10.$((200 + sum % 50)).$((sum / 50 % 256))
fi
SLOTS=${DNC_SLOTS:-1}
MTU=${DNC_MTU:-1500}
STATE=${DNC_STATE:-${TMPDIR:-/tmp}/netns-cluster.$PREFIX}
SW=$PREFIX-sw
HEAD=$PREFIX-head
FAST_FAIL=0
DAEMONIZE=0
TIMEOUT=${DNC_TIMEOUT:-}

die() { echo "netns-cluster: $*" >&2; exit 2; }

[[ $SUBNET =~ ^10(\.[0-9]{1,3}){2}$ || $SUBNET =~ ^192\.168\.[0-9]{1,3}$ ]] ||
  die "DNC_SUBNET must be 3 octets of a private range, e.g. 10.200.0"
[[ $STATE != *[[:space:]]* ]] || die "DNC_STATE must not contain spaces (Open MPI splits plm_rsh_agent on spaces)"
[[ $SLOTS =~ ^[1-9][0-9]*$ ]] || die "DNC_SLOTS must be a positive integer"
[[ $MTU =~ ^[1-9][0-9]*$ ]] || die "DNC_MTU must be a positive integer"

# --- namespaces -------------------------------------------------------------------------------

namespaces() {  # this cluster's namespaces
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-(n[0-9]+|head|sw)\$" | sort || true
}

host_ns() {  # HOST (index, nI, <prefix>-nI, address, head) -> namespace name, which must exist
  local h=$1 ns
  if [[ $h == head || $h == "$HEAD" ]]; then
    ns=$HEAD
  else
    h=${h#"$PREFIX"-}
    h=${h#n}
    if [[ $h == "$SUBNET".* ]]; then h=$((${h##*.} - 1)); fi
    [[ $h =~ ^[0-9]+$ ]] || die "bad host '$1' (want an index, nI, $PREFIX-nI or an address)"
    ns=$PREFIX-n$h
  fi
  namespaces | grep -qx "$ns" || die "no host '$1' ($ns) in cluster '$PREFIX'"
  echo "$ns"
}

kill_all_in() {  # SIGKILL every process in namespace $1 (by PID) and wait until none is left
  local pids _
  for _ in $(seq 50); do
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    [[ -z $pids ]] && return 0
    # shellcheck disable=SC2086 # one PID per word
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  echo "netns-cluster: processes still alive in $1: $pids" >&2
}

rank_pids() {  # processes in namespace $1 whose parent is an orted: the MPI ranks
  local pid ppid
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    ppid=$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ') || continue
    [[ -n $ppid && $(ps -o comm= -p "$ppid" 2>/dev/null) == orted ]] && echo "$pid"
  done
  return 0
}

cmd_down() {
  local ns
  for ns in $(namespaces); do kill_all_in "$ns"; done
  for ns in $(namespaces); do ip netns del "$ns"; done
  rm -rf "$STATE"
}

add_host_ns() {  # add_host_ns NS ADDRESS PORT: namespace with lo up and eth0=ADDRESS/24 on br0 as PORT
  ip netns add "$1"
  ip -n "$1" link set lo up   # orted hangs silently at start-up without loopback
  # Both veth ends are created inside their namespaces: nothing appears in the root namespace.
  ip link add eth0 netns "$1" mtu "$MTU" type veth peer name "$3" netns "$SW" mtu "$MTU"
  ip -n "$SW" link set "$3" master br0 up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
}

cmd_up() {
  local n=${1:-} i ns cases=""
  if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 200)); then die "usage: up N (1..200)"; fi
  ((EUID == 0)) || die "must run as root"
  for i in ip unshare mpirun orted timeout; do command -v "$i" >/dev/null || die "'$i' not on PATH"; done
  cmd_down
  mkdir -p "$STATE/tmp"
  # The bridge gets its own namespace: a fresh one has no firewall rules (the root namespace
  # may pass bridged frames through iptables).
  ip netns add "$SW"
  ip -n "$SW" link set lo up
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
  add_host_ns "$HEAD" "$SUBNET.254" head
  : >"$STATE/hostfile"
  for ((i = 0; i < n; i++)); do
    ns=$PREFIX-n$i
    add_host_ns "$ns" "$SUBNET.$((i + 1))" "n$i"
    # Host names, not addresses, so Open MPI's messages name hosts as 'dnc-n1'. Nothing resolves
    # them: the agent maps them, and mpirun and orted only use the addresses in their URIs.
    echo "$ns slots=$SLOTS" >>"$STATE/hostfile"
    cases+="  $ns|$SUBNET.$((i + 1))) ns=$ns ;;"$'\n'
  done
  # Open MPI execs the agent like ssh: 'agent HOST WORD...', the words being one orted command
  # line whose values are already quoted for a remote shell. So a shell must run them.
  cat >"$STATE/agent" <<EOF
#!/bin/sh
# Open MPI rsh agent for cluster '$PREFIX', generated by netns-cluster.sh. Called like ssh:
# 'agent HOST WORD...'; runs the words with sh inside HOST's network namespace, in a private
# UTS namespace whose hostname is the namespace name.
host=\$1
shift
case \$host in
$cases  *) echo "netns-cluster agent: unknown host '\$host'" >&2; exit 255 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname \$ns; \$*"
EOF
  chmod 755 "$STATE/agent"
}

# --- mpirun -----------------------------------------------------------------------------------

keepalive() {  # prints 'time intvl probes', or nothing for Open MPI's default
  local ka=${DUALIGN_OOB_KEEPALIVE:-}
  if [[ -z $ka && $FAST_FAIL == 1 ]]; then ka=2,1,3; fi
  [[ -z $ka || $ka == default ]] && return 0
  [[ $ka =~ ^([1-9][0-9]*),([1-9][0-9]*),([1-9][0-9]*)$ ]] ||
    die "DUALIGN_OOB_KEEPALIVE must be time,intvl,probes (seconds, seconds, count) or 'default'"
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}"
}

mpirun_env() {  # settings as variables, so a caller's own --mca/--hostfile/--bind-to wins
  local btl=${DNC_BTL:-tcp,self} ka
  if [[ -z ${DNC_BTL:-} ]] && ((SLOTS > 1)); then btl=tcp,vader,self; fi
  echo OMPI_ALLOW_RUN_AS_ROOT=1
  echo OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  echo "OMPI_MCA_orte_default_hostfile=$STATE/hostfile"
  echo "OMPI_MCA_plm_rsh_agent=$STATE/agent"
  echo OMPI_MCA_pml=ob1
  echo "OMPI_MCA_btl=$btl"
  echo "OMPI_MCA_btl_tcp_if_include=$SUBNET.0/24"
  echo "OMPI_MCA_oob_tcp_if_include=$SUBNET.0/24"
  # Every orted would bind its first rank to core 0, and no orted sees that the machine is
  # oversubscribed: without these two, ranks spin on one core (100-10000x slower).
  echo OMPI_MCA_hwloc_base_binding_policy=none
  echo OMPI_MCA_mpi_yield_when_idle=1
  echo "OMPI_MCA_orte_tmpdir_base=$STATE/tmp"
  ka=$(keepalive)
  if [[ -n $ka ]]; then
    read -r -a ka <<<"$ka"
    echo "OMPI_MCA_oob_tcp_keepalive_time=${ka[0]}"
    echo "OMPI_MCA_oob_tcp_keepalive_intvl=${ka[1]}"
    echo "OMPI_MCA_oob_tcp_keepalive_probes=${ka[2]}"
  fi
  if ((DAEMONIZE)); then echo OMPI_MCA_plm_rsh_no_tree_spawn=1; fi
}

parse_job_options() {  # sets FAST_FAIL, DAEMONIZE, TIMEOUT; the caller shifts $SHIFT words
  SHIFT=0
  while (($#)); do
    case $1 in
      --fast-fail) FAST_FAIL=1; SHIFT=$((SHIFT + 1)); shift ;;
      --daemonize) DAEMONIZE=1; SHIFT=$((SHIFT + 1)); shift ;;
      --timeout) TIMEOUT=${2:?--timeout needs seconds}; SHIFT=$((SHIFT + 2)); shift 2 ;;
      --) SHIFT=$((SHIFT + 1)); return 0 ;;
      *) return 0 ;;
    esac
  done
}

reap_hosts() {  # a host cut off from the network keeps its orted and ranks (and our stdout)
  local ns
  for ns in $(namespaces); do kill_all_in "$ns"; done
}

cmd_mpirun() {
  parse_job_options "$@"
  shift "$SHIFT"
  [[ -x $STATE/agent ]] || die "cluster '$PREFIX' is not up (netns-cluster.sh up N)"
  [[ -z $TIMEOUT || $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout/DNC_TIMEOUT must be whole seconds"
  local -a vars limit=()
  local rc=0
  mapfile -t vars < <(mpirun_env)
  # mpirun may ignore TERM while a daemon is unreachable: KILL 10 s later.
  if [[ -n $TIMEOUT ]]; then limit=(timeout -k 10 "$TIMEOUT"); fi
  # shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
  ip netns exec "$HEAD" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$HEAD" \
    env "${vars[@]}" "${limit[@]}" mpirun "$@" || rc=$?
  reap_hosts
  return "$rc"
}

cmd_run() {
  local n=${1:-}
  [[ -n $n ]] || die "usage: run N [--fast-fail] [--timeout S] [--] MPIRUN-ARGS"
  shift
  parse_job_options "$@"
  shift "$SHIFT"
  trap cmd_down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cmd_up "$n"
  local -a opts=()
  if ((FAST_FAIL)); then opts+=(--fast-fail); fi
  if ((DAEMONIZE)); then opts+=(--daemonize); fi
  if [[ -n $TIMEOUT ]]; then opts+=(--timeout "$TIMEOUT"); fi
  # In the background, so that a signal to this script is handled at once, not after mpirun.
  local pid rc=0
  cmd_mpirun "${opts[@]}" -- "$@" <&0 &
  pid=$!
  wait "$pid" || rc=$?
  return "$rc"
}

# --- main -------------------------------------------------------------------------------------

sub=${1:-help}
(($#)) && shift
case $sub in
  up) trap cmd_down EXIT; cmd_up "$@"; trap - EXIT ;;   # no half-built cluster on failure
  down) cmd_down ;;
  run) cmd_run "$@" ;;
  mpirun) cmd_mpirun "$@" ;;
  env) parse_job_options "$@"; mpirun_env ;;
  kill-rank)
    ns=$(host_ns "${1:?kill-rank HOST}")
    pids=$(rank_pids "$ns")
    [[ -n $pids ]] || die "no MPI rank runs on $ns"
    # shellcheck disable=SC2086 # one PID per word
    kill -9 $pids
    echo "killed rank pid(s) on $ns: $(tr '\n' ' ' <<<"$pids")" ;;
  kill-host) ns=$(host_ns "${1:?kill-host HOST}"); kill_all_in "$ns" ;;
  cut-link) ns=$(host_ns "${1:?cut-link HOST}"); ip -n "$ns" link set eth0 down ;;
  heal-link) ns=$(host_ns "${1:?heal-link HOST}"); ip -n "$ns" link set eth0 up ;;
  ranks) rank_pids "$(host_ns "${1:?ranks HOST}")" ;;
  exec) ns=$(host_ns "${1:?exec HOST CMD...}"); shift; exec ip netns exec "$ns" "$@" ;;
  status)
    for ns in $(namespaces); do
      printf '%s %s pids: %s\n' "$ns" "$(ip -n "$ns" -br -4 addr show dev eth0 2>/dev/null | awk '{print $2, $3}')" \
        "$(ip netns pids "$ns" | tr '\n' ' ')"
    done ;;
  help | -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) echo "netns-cluster: unknown subcommand '$sub' (see: netns-cluster.sh help)" >&2; exit 2 ;;
esac
