#!/usr/bin/env bash
# A simulated multi-host cluster on this one Linux machine, with fault injection: each host is
# a network namespace, all hosts hang off one bridge in a namespace of its own, and mpirun
# starts its remote daemons through an agent that enters a host's namespace (no sshd).
# Needs root (network namespaces). docs/distributed.md ("Simulated cluster") has measurements.
#
#   launch/cluster-sim.sh up N          hosts h1..hN at 10.77.0.1..N/24 (idempotent; `up M`
#                                       later adds or removes hosts). Installs missing packages
#                                       (apt, like launch/setup.sh) and compiles the delay helper.
#   launch/cluster-sim.sh run [MPIRUN ARGS] -- [SPADE-DIST ARGS]
#                                       mpirun on h1 over all hosts (SLOTS ranks per host);
#                                       -np defaults to hosts x SLOTS. Exit status = mpirun's.
#                                       Leftover processes in the hosts are killed afterwards.
#   launch/cluster-sim.sh fault HOST|all delay MS     +MS ms one-way on packets arriving at HOST
#   launch/cluster-sim.sh fault HOST|all rate RATE    HOST's egress limited to RATE (tc tbf: 100mbit)
#   launch/cluster-sim.sh fault HOST|all loss PCT     drop PCT % of packets arriving at HOST
#   launch/cluster-sim.sh fault HOST|all down         HOST's bridge port down (carrier lost)
#   launch/cluster-sim.sh fault HOST|all blackhole    drop everything to/from HOST, link up
#   launch/cluster-sim.sh clear HOST|all              remove all faults
#   launch/cluster-sim.sh kill HOST [SIGNAL]          signal every spade-dist process on HOST
#                                                     (default KILL)
#   launch/cluster-sim.sh exec HOST CMD...            run CMD on HOST (its namespace, hostname
#                                                     and /etc/hosts)
#   launch/cluster-sim.sh status                      hosts, addresses, processes, faults
#   launch/cluster-sim.sh down                        kill the processes in the namespaces, delete
#                                                     them and the state (exit 0 when nothing is up)
# HOST is a host name (h2) or its number (2). Unknown commands print a usage line and exit 2.
# Without `--`, all of run's arguments go to spade-dist. One `run` at a time per cluster.
# Faults of different kinds add up; a new one of the same kind replaces the old. Delay uses
# netem where the kernel has it, else an NFQUEUE helper (launch/lib/nfq-delay.c) in the host.
#
# Environment
#   CLUSTER_SIM_STATE   state directory (default /tmp/spade-cluster-sim): hosts, hostfile,
#                       agent, delay helper, logs. One cluster per state directory.
#   CLUSTER_SIM_PREFIX  host name prefix (default h): hosts PREFIX1..N, bridge namespace
#                       PREFIXsw. Read at `up`; later commands take it from the state directory.
#   CLUSTER_SIM_NET     first three octets of the /24 subnet (default 10.77.0), read at `up`.
#                       Every cluster has its own bridge, so clusters may share a subnet.
#   SLOTS               ranks per host for `run` (default 1)
#   SPADE_DIST_BIN      the binary `run` starts (default <repo>/.build/release/spade-dist);
#                       `kill` matches processes by its file name
#   CLUSTER_SIM_FORWARD names of further variables `run` passes to the ranks (mpirun -x);
#                       SPADE_* and OPENBLAS_* are always passed
#   OMPI_MCA_oob_tcp_keepalive_{time,intvl,probes}, OMPI_MCA_mpi_yield_when_idle
#                       override run's defaults (5, 1, 3 and 1)
#
# Isolation: nothing is created in the root namespace (no routes, no /etc/hosts change);
# the namespaces have no default route, so their traffic cannot leave them. `run` forces
# TCP over the private subnet (pml ob1, btl tcp,self, if_include) because the hosts share
# /dev/shm and the file system, which shared-memory transports would otherwise use.
# A partitioned host is noticed by OpenMPI's OOB keepalive: time + intvl x probes (~9 s).

set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/launch/cluster-sim.sh"
state="${CLUSTER_SIM_STATE:-/tmp/spade-cluster-sim}"
conf="$state/cluster.conf"
queue=7                      # NFQUEUE number of the delay helper (queues are per namespace)
packages=(iproute2 iptables gcc libc6-dev libnetfilter-queue-dev openmpi-bin)

say() { printf '[cluster-sim] %s\n' "$*" >&2; }
die() { printf '[cluster-sim] error: %s\n' "$*" >&2; exit 1; }
usage() {
    printf 'usage: %s up N | run [mpirun args] -- [spade-dist args] | fault HOST|all delay MS|rate RATE|loss PCT|down|blackhole | clear HOST|all | kill HOST [SIGNAL] | exec HOST CMD... | status | down\n' "$0" >&2
    exit 2
}

# shellcheck source=lib/apt.sh
source "$root/launch/lib/apt.sh"

# ---- configuration: env at `up`, the state directory afterwards ------------------------------

prefix="" net="" nhosts=0
load_conf() {
    prefix="${CLUSTER_SIM_PREFIX:-h}" net="${CLUSTER_SIM_NET:-10.77.0}" nhosts=0
    [[ -f "$conf" ]] || return 0
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            prefix) prefix="$value" ;;
            net) net="$value" ;;
            hosts) nhosts="$value" ;;
        esac
    done <"$conf"
    if [[ -n "${CLUSTER_SIM_PREFIX:-}" && "$CLUSTER_SIM_PREFIX" != "$prefix" ]]; then
        die "$state belongs to a cluster with prefix '$prefix', not '$CLUSTER_SIM_PREFIX' (set CLUSTER_SIM_STATE)"
    fi
}
save_conf() { printf 'prefix=%s\nnet=%s\nhosts=%s\n' "$prefix" "$net" "$nhosts" >"$conf"; }

switch() { printf '%ssw' "$prefix"; }
ns_exists() { [[ -e "/run/netns/$1" ]]; }
require_up() {
    if ((nhosts == 0)) || ! ns_exists "${prefix}1"; then die "no cluster is up in $state (launch/cluster-sim.sh up N)"; fi
}

# HOST argument -> host index (a name PREFIXi or just i).
host_index() {
    local h="$1" i
    if [[ "$h" =~ ^[0-9]+$ ]]; then i="$h"; else i="${h#"$prefix"}"; fi
    if ! [[ "$i" =~ ^[1-9][0-9]*$ ]] || ((i > nhosts)); then
        die "unknown host '$h' (hosts: ${prefix}1..${prefix}${nhosts})"
    fi
    printf '%s' "$i"
}
# HOST|all -> host indexes in the array `chosen`.
chosen=()
choose() {
    if [[ "$1" == all ]]; then
        mapfile -t chosen < <(seq 1 "$nhosts")
    else
        local i
        i="$(host_index "$1")"
        chosen=("$i")
    fi
}

# ---- processes inside our namespaces, always addressed by PID --------------------------------

# PIDs in namespace $1 (all of them, or only those whose command name is $2, or not $3).
ns_pids() {
    local ns="$1" only="${2:-}" except="${3:-}" p comm
    for p in $(ip netns pids "$ns" 2>/dev/null || true); do
        comm="$(cat "/proc/$p/comm" 2>/dev/null || true)"
        [[ -n "$comm" ]] || continue                   # already gone
        if [[ -n "$only" && "$comm" != "$only" ]] || [[ -n "$except" && "$comm" == "$except" ]]; then
            continue
        fi
        printf '%s\n' "$p"
    done
}

# Running, i.e. neither gone nor a zombie waiting for its parent.
running() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# TERM, up to 2 s to exit, then KILL.
stop_pids() {
    (($# > 0)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    local n p alive
    for n in $(seq 20); do
        alive=()
        for p in "$@"; do
            if running "$p"; then alive+=("$p"); fi
        done
        ((${#alive[@]} > 0)) || return 0
        if ((n < 20)); then sleep 0.1; fi
    done
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

# Kill what is left in the hosts (orteds and ranks orphaned by a partition or an abort),
# except the delay helpers, which belong to a fault that is still in force.
reap() {
    local i pids=()
    for i in $(seq 1 "$nhosts"); do
        ns_exists "$prefix$i" || continue
        mapfile -t -O "${#pids[@]}" pids < <(ns_pids "$prefix$i" "" nfq-delay)
    done
    ((${#pids[@]} == 0)) || say "reaping ${#pids[@]} leftover process(es): ${pids[*]}"
    stop_pids "${pids[@]}"
}

# ---- running something "on" a host ----------------------------------------------------------

# The command prefix that runs a program on host $1: its network namespace, a UTS namespace
# with the host's name, and the cluster's /etc/hosts. The bind mount lives in the private
# mount namespace `ip netns exec` makes, so the real /etc/hosts is untouched.
on_host=()
set_on_host() {
    # shellcheck disable=SC2016  # $1 and $2 are the inner shell's
    on_host=(ip netns exec "$1" unshare --uts /bin/sh -c
        'hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"' sh "$1" "$state/hosts")
}

# OpenMPI's plm_rsh_agent: called as `agent [options] HOST COMMAND...` like ssh, so the
# command words are joined and run by a shell, as sshd would.
cmd_agent() {
    while (($# > 0)) && [[ "$1" == -* ]]; do shift; done
    (($# >= 2)) || die "agent: usage: agent HOST COMMAND..."
    local host="$1" name
    shift
    if [[ "$host" =~ ^[0-9.]+$ ]]; then            # OpenMPI may name a host by its address
        name="$(awk -v ip="$host" '$1 == ip { print $2; exit }' "$state/hosts")"
        host="${name:-$host}"
    fi
    ns_exists "$host" || { say "agent: unknown host $host"; exit 255; }
    # ssh would reach the host over the network: so must the agent, or a host cut off before
    # the launch costs the daemon's TCP connect timeout (over 2 minutes) instead of failing at
    # once. A refused connection (RST) proves the path; a timeout or no route, like ssh's
    # "connect to host", ends the launch (exit 255, ssh's code).
    local address probe
    address="$(awk -v h="$host" '$2 == h { print $1; exit }' "$state/hosts")"
    if [ -n "$address" ]; then
        probe="$(timeout 3 bash -c "exec 3<>/dev/tcp/$address/22" 2>&1)" || true
        if [[ "$probe" != *refused* ]]; then
            say "agent: ssh: connect to host $host ($address) port 22: ${probe:-timed out after 3 s} (the simulated network does not reach it)"
            exit 255
        fi
    fi
    # Without tree spawn, mpirun asks the daemon to daemonize, so this agent would return at
    # once and a daemon that dies before calling back would leave mpirun waiting forever.
    # Kept in the foreground (like a daemon behind ssh), its end is noticed and its errors shown.
    local words=() w
    for w in "$@"; do [[ "$w" == --daemonize ]] || words+=("$w"); done
    set_on_host "$host"
    exec "${on_host[@]}" /bin/sh -c "${words[*]}"
}

cmd_exec() {
    (($# >= 2)) || usage
    require_up
    local i
    i="$(host_index "$1")"
    shift
    set_on_host "$prefix$i"
    exec "${on_host[@]}" "$@"
}

# ---- up / down -------------------------------------------------------------------------------

build_delay_helper() {
    local src="$root/launch/lib/nfq-delay.c" bin="$state/nfq-delay"
    [[ -x "$bin" && "$bin" -nt "$src" ]] && return 0
    say "compiling the delay helper: $bin"
    gcc -O2 -Wall -o "$bin.tmp" "$src" -lnetfilter_queue -lnfnetlink || die "could not compile $src"
    mv "$bin.tmp" "$bin"
}

add_host() {
    local i="$1" h="$prefix$1" sw
    sw="$(switch)"
    ns_exists "$h" || ip netns add "$h"
    ip -n "$h" link set lo up
    if ! ip -n "$h" link show eth0 >/dev/null 2>&1; then
        ip -n "$sw" link del "p$i" 2>/dev/null || true
        ip -n "$sw" link add "p$i" type veth peer name eth0 netns "$h"
    fi
    ip -n "$sw" link set "p$i" master br0 up
    ip -n "$h" addr replace "$net.$i/24" dev eth0
    ip -n "$h" link set eth0 up
}

remove_ns() {
    ns_exists "$1" || return 0
    local pids=()
    mapfile -t pids < <(ns_pids "$1")
    stop_pids "${pids[@]}"
    ip netns del "$1"
}

cmd_up() {
    if (($# != 1)) || ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || (($1 > 250)); then die "up N: N must be 1..250"; fi
    [[ "$(id -u)" == 0 ]] || die "needs root (network namespaces)"
    local n="$1" i
    [[ "$prefix" =~ ^[A-Za-z][A-Za-z0-9-]{0,30}$ ]] || die "CLUSTER_SIM_PREFIX must be a letter and up to 30 letters, digits or -"
    [[ "$net" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "CLUSTER_SIM_NET must be three octets, like 10.77.0"
    apt_install_missing "${packages[@]}"
    mkdir -p "$state"
    build_delay_helper

    # Record the larger host count first, so that `down` cleans up after a failed `up`.
    local old="$nhosts"
    ((nhosts = n > old ? n : old))
    save_conf
    { printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n'
      for i in $(seq 1 "$n"); do printf '%s.%s %s%s\n' "$net" "$i" "$prefix" "$i"; done; } >"$state/hosts"
    printf '#!/usr/bin/env bash\n# plm_rsh_agent for the cluster in this directory (written by cluster-sim.sh up)\nCLUSTER_SIM_STATE=%q exec %q agent "$@"\n' \
        "$state" "$self" >"$state/agent"
    chmod +x "$state/agent"

    local sw
    sw="$(switch)"
    ns_exists "$sw" || ip netns add "$sw"
    ip -n "$sw" link set lo up
    ip -n "$sw" link show br0 >/dev/null 2>&1 || ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0
    ip -n "$sw" link set br0 up
    for i in $(seq 1 "$n"); do add_host "$i"; done
    for ((i = n + 1; i <= old; i++)); do
        remove_ns "$prefix$i"
        ip -n "$sw" link del "p$i" 2>/dev/null || true
    done
    nhosts="$n"
    save_conf
    say "up: $n host(s) ${prefix}1..${prefix}$n on $net.0/24, bridge in namespace $sw, state in $state"
}

cmd_down() {
    if [[ ! -f "$conf" ]]; then
        say "nothing is up in $state"
        return 0
    fi
    local i
    for i in $(seq 1 "$nhosts"); do remove_ns "$prefix$i"; done
    remove_ns "$(switch)"
    # Only the files `up`, `run` and `fault` write, so a mistaken CLUSTER_SIM_STATE loses nothing else.
    rm -f "$conf" "$state/hosts" "$state/hostfile" "$state/agent" "$state/nfq-delay" "$state/nfq-delay.tmp" \
        "$state"/nfq-delay.*.log
    rmdir "$state" 2>/dev/null || say "left $state (it holds other files)"
    say "down: removed ${prefix}1..${prefix}$nhosts and $(switch)"
}

# ---- faults ----------------------------------------------------------------------------------

ipt() { ip netns exec "$1" iptables -w "${@:2}"; }

# ipt_once NS TABLE CHAIN RULE...: append RULE unless the chain has it already.
ipt_once() { ipt "$1" -t "$2" -C "${@:3}" 2>/dev/null || ipt "$1" -t "$2" -A "${@:3}"; }

stop_delay() {
    local i="$1" pids=()
    tc -n "$(switch)" qdisc del dev "p$i" root 2>/dev/null || true
    ipt "$prefix$i" -t mangle -D PREROUTING -i eth0 -j NFQUEUE --queue-num "$queue" --queue-bypass 2>/dev/null || true
    mapfile -t pids < <(ns_pids "$prefix$i" nfq-delay)
    stop_pids "${pids[@]}"
}

fault_delay() {
    local i="$1" ms="$2" h="$prefix$1" us log
    stop_delay "$i"
    us="$(awk -v ms="$ms" 'BEGIN { printf "%d", ms * 1000 }')"
    ((us > 0)) || return 0
    # netem where the kernel has it: on the bridge port's egress, i.e. on packets towards h.
    if tc -n "$(switch)" qdisc replace dev "p$i" root netem delay "${ms}ms" 2>/dev/null; then
        return 0
    fi
    # No sch_netem: queue h's incoming packets to the delay helper running in h's namespace.
    # (--queue-bypass: packets pass undelayed while no helper listens, instead of being dropped.)
    log="$state/nfq-delay.$h.log"
    setsid ip netns exec "$h" "$state/nfq-delay" "$queue" "$us" </dev/null >"$log" 2>&1 &
    local n
    for n in $(seq 50); do
        grep -q ready "$log" 2>/dev/null && break
        ((n < 50)) || die "the delay helper on $h did not start: $(cat "$log")"
        sleep 0.05
    done
    ipt_once "$h" mangle PREROUTING -i eth0 -j NFQUEUE --queue-num "$queue" --queue-bypass
}

fault_loss() {
    local h="$prefix$1" p
    p="$(awk -v pct="$2" 'BEGIN { printf "%.6f", pct / 100 }')"
    # A chain of its own, so a new loss rate replaces the old one and leaves blackholes alone.
    ipt "$h" -t raw -N sim-loss 2>/dev/null || ipt "$h" -t raw -F sim-loss
    ipt_once "$h" raw PREROUTING -i eth0 -j sim-loss
    ipt "$h" -t raw -A sim-loss -m statistic --mode random --probability "$p" -j DROP
}

cmd_fault() {
    (($# >= 2)) || usage
    require_up
    local kind="$2" arg="${3:-}" i
    choose "$1"
    case "$kind" in
        delay | loss) [[ "$arg" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "fault $kind needs a number, got '$arg'" ;;
        rate) [[ "$arg" =~ ^[0-9]+(\.[0-9]+)?[kmgt]?(bit|bps)$ ]] || die "fault rate needs a tc rate like 100mbit, got '$arg'" ;;
        down | blackhole) [[ -z "$arg" ]] || usage ;;
        *) usage ;;
    esac
    for i in "${chosen[@]}"; do
        case "$kind" in
            delay) fault_delay "$i" "$arg" ;;
            # tbf on h's egress; the burst lets a 1 Gbit/s-class rate actually be reached.
            rate) tc -n "$prefix$i" qdisc replace dev eth0 root tbf rate "$arg" burst 256kb latency 100ms ;;
            loss) fault_loss "$i" "$arg" ;;
            down) ip -n "$(switch)" link set "p$i" down ;;
            blackhole)
                ipt_once "$prefix$i" raw PREROUTING -i eth0 -j DROP
                ipt_once "$prefix$i" raw OUTPUT -o eth0 -j DROP ;;
        esac
        say "fault: $prefix$i $kind${arg:+ $arg}"
    done
}

cmd_clear() {
    (($# == 1)) || usage
    require_up
    local i h
    choose "$1"
    for i in "${chosen[@]}"; do
        h="$prefix$i"
        stop_delay "$i"
        ipt "$h" -t raw -F 2>/dev/null || true
        ipt "$h" -t raw -X 2>/dev/null || true
        ipt "$h" -t mangle -F 2>/dev/null || true
        tc -n "$h" qdisc del dev eth0 root 2>/dev/null || true
        ip -n "$(switch)" link set "p$i" up
    done
    # Addresses that went unanswered during a partition stay FAILED in the hosts' neighbour
    # tables after the link is back, and the next job's daemons then fail to connect at once.
    for i in $(seq 1 "$nhosts"); do ip -n "$prefix$i" neigh flush all 2>/dev/null || true; done
    say "cleared: $1"
}

cmd_kill() {
    (($# == 1 || $# == 2)) || usage
    require_up
    local i sig="${2:-KILL}" name pids=()
    i="$(host_index "$1")"
    name="$(basename "${SPADE_DIST_BIN:-spade-dist}")"
    mapfile -t pids < <(ns_pids "$prefix$i" "${name:0:15}")   # /proc/PID/comm keeps 15 characters
    if ((${#pids[@]} == 0)); then
        say "no $name process on $prefix$i"
        return 0
    fi
    kill -s "$sig" "${pids[@]}"
    say "sent SIG${sig#SIG} to $name on $prefix$i: ${pids[*]}"
}

cmd_status() {
    if [[ ! -f "$conf" ]]; then
        echo "no cluster in $state"
        return 0
    fi
    local i h sw
    sw="$(switch)"
    echo "state $state: hosts ${prefix}1..${prefix}$nhosts on $net.0/24, bridge namespace $sw"
    for i in $(seq 1 "$nhosts"); do
        h="$prefix$i"
        if ! ns_exists "$h"; then echo "$h: missing"; continue; fi
        local procs=() port
        mapfile -t procs < <(for p in $(ns_pids "$h"); do cat "/proc/$p/comm" 2>/dev/null || true; done | sort | uniq -c | awk '{ print $2 "(" $1 ")" }')
        port="$(ip -n "$sw" -br link show "p$i" 2>/dev/null | awk '{ print $2 }')"
        echo "$h: $(ip -n "$h" -br -4 addr show dev eth0 | awk '{ print $3 }') port ${port:-?} processes: ${procs[*]:-none}"
        { tc -n "$h" qdisc show dev eth0; tc -n "$sw" qdisc show dev "p$i"; } 2>/dev/null |
            grep -E 'tbf|netem' | sed 's/^/    /' || true
        { ipt "$h" -t raw -S; ipt "$h" -t mangle -S; } 2>/dev/null | grep -E -- '-j (DROP|NFQUEUE)' | sed 's/^/    /' || true
    done
}

# ---- run -------------------------------------------------------------------------------------

cmd_run() {
    require_up
    local mpi_args=() prog_args=() seen_dashes=0 a
    for a in "$@"; do
        if ((seen_dashes)); then prog_args+=("$a")
        elif [[ "$a" == -- ]]; then seen_dashes=1
        else mpi_args+=("$a")
        fi
    done
    # Without `--`, everything is for spade-dist.
    if ((!seen_dashes)); then prog_args=("${mpi_args[@]}"); mpi_args=(); fi

    local bin="${SPADE_DIST_BIN:-$root/.build/release/spade-dist}" slots="${SLOTS:-1}" i
    [[ -x "$bin" ]] || die "no spade-dist binary at $bin: swift build -c release, or set SPADE_DIST_BIN"
    [[ "$slots" =~ ^[1-9][0-9]*$ ]] || die "SLOTS must be a positive integer, got '$slots'"
    for i in $(seq 1 "$nhosts"); do printf '%s%s slots=%s\n' "$prefix" "$i" "$slots"; done >"$state/hostfile"

    local np=(-np "$((nhosts * slots))")
    for a in "${mpi_args[@]}"; do
        case "$a" in -np | -n | --np | -c | --n) np=() ;; esac
    done
    # mpirun only passes the variables it is told to (as over ssh on a real cluster).
    local fwd=() name
    for name in $(compgen -e | grep -E '^(SPADE_|OPENBLAS_)' || true) ${CLUSTER_SIM_FORWARD:-}; do
        [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CLUSTER_SIM_FORWARD: bad name '$name'"
        if [[ -v "$name" ]]; then fwd+=(-x "$name"); fi
    done

    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    export OMPI_MCA_plm_rsh_agent="$state/agent" OMPI_MCA_plm_rsh_no_tree_spawn=1
    export OMPI_MCA_orte_default_hostfile="$state/hostfile"
    # Only TCP, only over the simulated network (no shared-memory shortcut between "hosts").
    export OMPI_MCA_pml=ob1 OMPI_MCA_btl=tcp,self
    export OMPI_MCA_btl_tcp_if_include="$net.0/24" OMPI_MCA_oob_tcp_if_include="$net.0/24"
    export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_rmaps_base_oversubscribe=1
    # All hosts share this machine's cores: waiting ranks must yield, not spin.
    export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
    # A dead link is only noticed by the OOB keepalive (default 300 s + 9 x 20 s); these bound
    # a partition to about 5 + 1 x 3 s before mpirun aborts the job.
    export OMPI_MCA_oob_tcp_keepalive_time="${OMPI_MCA_oob_tcp_keepalive_time:-5}"
    export OMPI_MCA_oob_tcp_keepalive_intvl="${OMPI_MCA_oob_tcp_keepalive_intvl:-1}"
    export OMPI_MCA_oob_tcp_keepalive_probes="${OMPI_MCA_oob_tcp_keepalive_probes:-3}"

    local cmd=(mpirun "${np[@]}" "${fwd[@]}" "${mpi_args[@]}" "$bin" "${prog_args[@]}")
    say "on ${prefix}1: ${cmd[*]}"
    set_on_host "${prefix}1"
    # In the background so a TERM/INT to this script can be passed on and the hosts reaped.
    "${on_host[@]}" "${cmd[@]}" &
    local mpirun_pid=$! rc=0
    # mpirun passes TERM on to the ranks; stop_pids gives it 2 s before KILL, then reap.
    # shellcheck disable=SC2064  # the PID is fixed now
    trap "stop_pids $mpirun_pid; wait $mpirun_pid 2>/dev/null || true; reap; exit 143" TERM
    # shellcheck disable=SC2064
    trap "stop_pids $mpirun_pid; wait $mpirun_pid 2>/dev/null || true; reap; exit 130" INT
    wait "$mpirun_pid" || rc=$?
    trap - TERM INT
    reap
    return "$rc"
}

# ---- main ------------------------------------------------------------------------------------

(($# > 0)) || usage
command="$1"
shift
case "$command" in
    up | run | fault | clear | kill | exec | status | down | agent) load_conf ;;
    *) usage ;;
esac
case "$command" in
    up) cmd_up "$@" ;;
    run) cmd_run "$@" ;;
    fault) cmd_fault "$@" ;;
    clear) cmd_clear "$@" ;;
    kill) cmd_kill "$@" ;;
    exec) cmd_exec "$@" ;;
    status) cmd_status ;;
    down) cmd_down ;;
    agent) cmd_agent "$@" ;;
esac
