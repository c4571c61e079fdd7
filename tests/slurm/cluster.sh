#!/usr/bin/env bash
# A real single-node SLURM on localhost for tests: 2 CPUs and a fake `gpu` GRES.
#   tests/slurm/cluster.sh start   install (Debian slurm-wlm + munge) if missing, configure, start, wait until idle
#   tests/slurm/cluster.sh stop    stop the daemons
# Needs root and apt-get; exits 3 (with the reason on stderr) where SLURM cannot be started here.
set -euo pipefail
STATE=/tmp/spino-slurm
CONF=/etc/slurm

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

configure() {
    mkdir -p "$CONF" "$STATE"/{ctld,d,log} /run/munge /var/log/munge /var/lib/munge
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
    [ -s /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    cat > "$CONF/slurm.conf" <<CONF
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
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
CONF
    rm -f "$CONF/cgroup.conf"  # no cgroups: linuxproc tracking and no task plugin work in containers
}

start() {
    install
    configure
    pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
    pgrep -x slurmctld >/dev/null || slurmctld -c || fail "slurmctld did not start (see $STATE/log)"
    pgrep -x slurmd >/dev/null || slurmd -N localhost -c || fail "slurmd did not start (see $STATE/log)"
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
        pkill -x "$daemon" 2>/dev/null || true
        for _ in $(seq 20); do pgrep -x "$daemon" >/dev/null || break; sleep 0.5; done
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
