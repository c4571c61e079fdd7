#!/usr/bin/env bash
# A real single-node SLURM on localhost for tests: 2 CPUs and a fake `gpu` GRES.
#   tests/slurm/cluster.sh start   install (Debian slurm-wlm + munge) if missing, configure, start, wait until idle
#   tests/slurm/cluster.sh stop    stop the daemons and remove the configuration it wrote
# Needs root and apt-get; exits 3 (with the reason on stderr) where SLURM cannot be started here.
# It never touches a SLURM that is already configured or running on this machine: an existing
# /etc/slurm/slurm.conf not written by this script, or running SLURM daemons it did not start, make it
# refuse (exit 3). `stop` ends only the daemons whose pids it recorded at `start`.
set -euo pipefail
STATE=/tmp/spino-slurm
CONF=/etc/slurm
MARK="# written by spino tests/slurm/cluster.sh"

fail() { echo "slurm: $*" >&2; exit 3; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    [ "$(id -u)" = 0 ] || fail "not root: cannot install slurm-wlm and munge"
    command -v apt-get >/dev/null || fail "no apt-get: cannot install slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge >/dev/null \
        || fail "apt-get install slurm-wlm munge failed"
}

refuse_foreign_slurm() {
    if [ -e "$CONF/slurm.conf" ] && ! grep -qxF "$MARK" "$CONF/slurm.conf"; then
        fail "$CONF/slurm.conf exists and was not written by this script: this machine's SLURM is left alone"
    fi
    for daemon in slurmctld slurmd; do
        if pgrep -x "$daemon" >/dev/null && ! ours "$daemon"; then
            fail "a $daemon this script did not start is running: this machine's SLURM is left alone"
        fi
    done
}

ours() {  # is the running daemon the one whose pid we recorded?
    [ -s "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null
}

configure() {
    mkdir -p "$CONF" "$STATE"/{ctld,d,log} /run/munge /var/log/munge /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then  # an existing key is left as it is
        mungekey --create --force 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    cat > "$CONF/slurm.conf" <<CONF
$MARK
ClusterName=spino-test
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=localhost CPUs=2 RealMemory=8000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
    cat > "$CONF/gres.conf" <<CONF
$MARK
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
CONF
    if [ -e "$CONF/cgroup.conf" ] && grep -qxF "$MARK" "$CONF/cgroup.conf"; then rm -f "$CONF/cgroup.conf"; fi
    [ ! -e "$CONF/cgroup.conf" ] || fail "$CONF/cgroup.conf exists: this machine's SLURM is left alone"
}

start() {
    install
    refuse_foreign_slurm
    configure
    if ! pgrep -x munged >/dev/null; then
        runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
        for _ in $(seq 20); do [ -s /run/munge/munged.pid ] && break; sleep 0.2; done
        cp /run/munge/munged.pid "$STATE/munged.pid"  # the daemon's own record, written once it has forked
    fi
    ours slurmctld || slurmctld -c || fail "slurmctld did not start (see $STATE/log)"
    ours slurmd || slurmd -N localhost -c || fail "slurmd did not start (see $STATE/log)"
    for _ in $(seq 60); do
        state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
        case "$state" in idle*|mix*) echo "slurm: node localhost is $state"; return 0 ;; esac
        [ "$state" = "down" ] || [ "$state" = "drained" ] && scontrol update nodename=localhost state=resume 2>/dev/null || true
        sleep 1
    done
    fail "node never became idle (state: ${state:-none}; see $STATE/log)"
}

stop() {
    for daemon in slurmd slurmctld munged; do
        ours "$daemon" || continue
        pid=$(cat "$STATE/$daemon.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        rm -f "$STATE/$daemon.pid"
    done
    # The configuration it wrote goes too: with a slurm.conf naming a controller that is gone, every
    # `scontrol` waits 10 s for it, and Snakemake's SLURM plugin runs `scontrol show config` whenever
    # Snakemake starts (every later local run of the tests would wait).
    for file in slurm.conf gres.conf cgroup.conf; do
        if [ -e "$CONF/$file" ] && grep -qxF "$MARK" "$CONF/$file"; then rm -f "$CONF/$file"; fi
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
