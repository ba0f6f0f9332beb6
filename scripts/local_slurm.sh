#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for developing and testing `hardware=slurm*` sweeps
# (tests/slurm/ and CI use it; they skip when no cluster answers).
#
#   bash scripts/local_slurm.sh          start it (idempotent: what already runs is left running)
#   bash scripts/local_slurm.sh stop     stop the daemons this script started
#   sinfo; squeue; sacct                 then use it like any cluster: python -m ftexp -m hardware=slurm_cpu ...
#
# Needs root on Debian/Ubuntu (apt-get) and no systemd: it installs slurmctld, slurmd, slurm-client, munge,
# slurmdbd and mariadb-server from the distribution, writes /etc/slurm/slurm.conf and slurmdbd.conf, and starts
# munged, mariadbd, slurmdbd, slurmctld and slurmd as plain daemons (no cgroups: processes are tracked by
# /proc, memory is scheduled but not enforced). Logs: /var/log/slurm/. Tested on Debian 12 (slurm-wlm 22.05):
# about 30 s the first time (apt-get update and install included), 7 s once the packages are installed.
#
# Accounting (slurmdbd) is on because submitit polls job states with `sacct`: without it, a job that dies
# without writing its result (scancel, time limit, crash) leaves the submitting sweep waiting forever.
#
# Environment:
#   SLURM_CPUS=8   CPUs the node advertises, on purpose more than it has: small CPU jobs then run side by side
#                  (each job still sets its own thread count; ftexp's demo uses one). To change it, stop first.
set -euo pipefail

NODE=$(hostname -s)
CPUS=${SLURM_CPUS:-8}
MEM_MB=$(($(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo) - 1024))
CLUSTER=localcluster
PIDFILES="/run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/slurm/slurmdbd.pid /run/mysqld/mysqld.pid
/run/munge/munged.pid"

log() { echo "local_slurm: $*"; }
fail() {
  echo "local_slurm: $*" >&2
  exit 1
}

if [ "${1:-}" = stop ]; then
  for f in $PIDFILES; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || continue
    # wait, so that a start right after this does not find a daemon still shutting down
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    log "stopped $(basename "$f" .pid)"
  done
  exit 0
fi
[ $# -eq 0 ] || fail "usage: bash scripts/local_slurm.sh [stop]"
[ "$(id -u)" = 0 ] || fail "needs root (it installs packages and starts system daemons)"
command -v apt-get >/dev/null || fail "needs apt-get (Debian or Ubuntu)"

wait_for() { # wait_for <seconds> <command...>: retry once a second
  local n=$1
  shift
  for _ in $(seq "$n"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  fail "timed out after ${n}s waiting for: $*"
}

# 1. packages; skipped when present. The postinst scripts would start services through systemd/init scripts:
#    policy-rc.d answers "not allowed", so nothing starts behind our back.
MISSING=""
for pkg in slurmctld slurmd slurm-client munge slurmdbd mariadb-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || MISSING="$MISSING $pkg"
done
if [ -n "$MISSING" ]; then
  log "installing$MISSING"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $MISSING
fi

# 2. munge (authentication between the daemons and the commands)
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge
chown munge:munge /run/munge
chmod 755 /run/munge
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
fi
wait_for 10 sh -c 'munge -n | unmunge'

# 3. slurm.conf. Settings that differ from the defaults, and why:
#    AuthInfo=cred_expire=10    a requeued job may start again 11 s after it ended (default 121 s)
#    SchedulerParameters        scan pending jobs every 2 s (defaults 60 s / 30 s), so a requeued job or the next
#                               array task starts as soon as it may
#    KillWait=5, OverTimeLimit=0  a job past its time limit gets SIGTERM, then SIGKILL 5 s later (default 30 s)
#    MinJobAge=300              finished jobs stay visible to squeue/scontrol for 5 minutes
#    JobRequeue=1               batch jobs may be requeued (submitit requeues on preemption and time-outs)
#    DefMemPerCPU=1024          without it a job with no --mem takes all the node's memory, so jobs run one by one
#    SlurmdParameters=config_overrides  trust CPUs/RealMemory below instead of draining the node on a mismatch
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
cat >/etc/slurm/slurm.conf <<EOF
# written by scripts/local_slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
MailProg=/bin/true
InactiveLimit=0
KillWait=5
OverTimeLimit=0
MinJobAge=300
JobRequeue=1
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# 4. accounting: mariadb + slurmdbd
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
if ! mariadb-admin ping >/dev/null 2>&1; then
  setsid mariadbd --user=mysql --bind-address=127.0.0.1 >/var/log/mariadbd.log 2>&1 </dev/null &
fi
wait_for 60 mariadb-admin ping
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
cat >/etc/slurm/slurmdbd.conf <<'EOF'
# written by scripts/local_slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
EOF
chmod 600 /etc/slurm/slurmdbd.conf # slurmdbd refuses a conf others can read
pgrep -F /run/slurm/slurmdbd.pid >/dev/null 2>&1 || slurmdbd
wait_for 30 sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true

# 5. the controller and the node daemon (both daemonize). Running ones re-read the conf written above.
if pgrep -F /run/slurm/slurmctld.pid >/dev/null 2>&1; then scontrol reconfigure; else slurmctld; fi
pgrep -F /run/slurm/slurmd.pid >/dev/null 2>&1 || slurmd
wait_for 30 sh -c "sinfo -h -N -o %T | grep -Eqx 'idle|mixed|allocated'"

# 6. smoke test: a batch job runs to completion and accounting saw it
JOB=$(sbatch --parsable --wait -t 1 -o /dev/null --wrap true)
wait_for 10 sh -c "sacct -n -X -j $JOB -o State | grep -q COMPLETED"
sinfo
log "ready: node $NODE, $CPUS CPUs, ${MEM_MB} MB, partition debug (stop: bash scripts/local_slurm.sh stop)"
