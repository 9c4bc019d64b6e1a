# A single-node SLURM cluster on localhost for the tests (sourced; recipe of
# ../shared/research/toolchain.md section 8): munged, slurmctld and slurmd run as root from a
# configuration written under $SLURM_LOCAL_BASE, nothing in /etc is read or changed.
#   slurm_local_start BASE     start the daemons; exports SLURM_CONF; returns 1 if not idle in 30 s
#   slurm_local_stop           cancel every job, stop slurmd -> slurmctld -> munged by their PIDs
# The ports are chosen free at start, so a cluster left by someone else does not collide.

# /proc state, not kill -0: exited daemons stay zombies for a while under some init processes
slurm_local_alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

slurm_local_stop_pidfile() {
  [ -f "$1" ] || return 0
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  if [ -n "$pid" ] && slurm_local_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do slurm_local_alive "$pid" || break; sleep 0.1; done
    slurm_local_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$1"
}

slurm_local_free_port() { # first port >= $1 nobody listens on
  local p=$1
  while ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; do p=$((p + 1)); done
  echo "$p"
}

slurm_local_start() {
  SLURM_LOCAL_BASE=$1
  local b=$SLURM_LOCAL_BASE
  mkdir -p "$b"/{munge,etc,state,spool,log}
  chmod 755 "$b" "$b/munge" # munged: the socket's directory must be o+x
  mungekey --create --keyfile="$b/munge/munge.key" 2>/dev/null || return 1
  chmod 400 "$b/munge/munge.key"
  munged --key-file="$b/munge/munge.key" --socket="$b/munge/munge.socket" \
    --pid-file="$b/munge/munged.pid" --log-file="$b/munge/munged.log" \
    --seed-file="$b/munge/munged.seed" || return 1
  munge -S "$b/munge/munge.socket" -n | unmunge -S "$b/munge/munge.socket" >/dev/null || return 1
  local cpus mem ctl_port d_port
  # what slurmd sees (not nproc, which obeys OMP_NUM_THREADS)
  cpus=$(slurmd -C | sed -n 's/.* CPUs=\([0-9]*\).*/\1/p')
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  ctl_port=$(slurm_local_free_port $((20000 + $$ % 20000)))
  d_port=$(slurm_local_free_port $((ctl_port + 1)))
  cat >"$b/etc/slurm.conf" <<CONF
ClusterName=cnflowtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$b/munge/munge.socket,cred_expire=10
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$b/log/jobcomp.log
MailProg=/bin/true
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
ReturnToService=2
StateSaveLocation=$b/state
SlurmdSpoolDir=$b/spool
SlurmctldPidFile=$b/slurmctld.pid
SlurmdPidFile=$b/slurmd.pid
SlurmctldLogFile=$b/log/slurmctld.log
SlurmdLogFile=$b/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
PlugStackConfig=$b/etc/plugstack.conf
MaxArraySize=1001
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus Boards=1 SocketsPerBoard=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  : >"$b/etc/plugstack.conf"
  export SLURM_CONF="$b/etc/slurm.conf"
  slurmctld -c -f "$SLURM_CONF" || return 1 # daemonises; -c: clean state
  slurmd -N localhost -f "$SLURM_CONF" || return 1 # the node is "localhost", not the hostname
  local st=""
  for _ in $(seq 1 150); do
    st=$(sinfo -h -N -o '%T' 2>/dev/null || true)
    [ "$st" = "idle" ] && return 0
    sleep 0.2
  done
  echo "slurm_local: node state '$st' after 30 s (logs in $b/log)" >&2
  return 1
}

slurm_local_stop() {
  local b=${SLURM_LOCAL_BASE:-}
  [ -n "$b" ] || return 0
  if [ -f "$b/slurmctld.pid" ] && scancel --full --user=root 2>/dev/null; then
    for _ in $(seq 1 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  # stop order matters: without munged the other two cannot finish cleanly
  slurm_local_stop_pidfile "$b/slurmd.pid"
  slurm_local_stop_pidfile "$b/slurmctld.pid"
  slurm_local_stop_pidfile "$b/munge/munged.pid"
  # a slurmstepd left over from a killed job: only those that belong to this cluster
  local p
  for p in $(pgrep -x slurmstepd 2>/dev/null || true); do
    grep -qs "$b" "/proc/$p/environ" && kill -KILL "$p" 2>/dev/null
  done
  return 0
}
