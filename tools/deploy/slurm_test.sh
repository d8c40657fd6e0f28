#!/usr/bin/env bash
# Runs tools/deploy/slurm/picos-cluster.sbatch on a real one-host Slurm that
# this test starts (munged, slurmctld and slurmd on private sockets, ports
# and files under one temporary folder) and stops after, also on failure, by
# their pid files. A job that should work: picos-node started by srun,
# picos-cluster-check on the first node finds it up, exit 0, no picos-node
# left. A job whose client is given a node that does not exist: the client
# says so and the job fails.
set -euo pipefail
script="$(realpath "$1")"
node_bin="$(realpath "$2")"
check_bin="$(realpath "$3")"

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIPPED: slurmd must run as root to start jobs; this test is not root" >&2
  exit 0
fi
for tool in /usr/sbin/slurmctld-wlm /usr/sbin/slurmd-wlm sbatch sinfo munged runuser /usr/bin/python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "$tool is missing: run tools/setup (slurmctld slurmd slurm-client munge)" >&2; exit 1; }
done

# A short path the slurm and munge users can reach (Bazel's TEST_TMPDIR is
# under /root).
tmp="$(mktemp -d /tmp/picos-slurm.XXXXXX)"
chmod 0755 "$tmp"
cleanup() {
  set +e
  for pidfile in "$tmp/slurmd.pid" "$tmp/slurmctld.pid" "$tmp/munge/munged.pid"; do
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  # picos-node processes that jobs started from this folder's copy.
  for exe in /proc/[0-9]*/exe; do
    if [ "$(readlink "$exe" 2>/dev/null)" = "$tmp/bin/picos-node" ]; then
      pid="${exe#/proc/}"; pid="${pid%/exe}"
      echo "killing a leftover picos-node, pid $pid" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
  done
  if [ "${KEEP_SLURM_TMP:-}" = "" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ctld_port="$(free_port)"; slurmd_port="$(free_port)"; picos_port="$(free_port)"
host="$(hostname)"

mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/bin" "$tmp/jobs"
chown munge:munge "$tmp/munge"; chmod 0755 "$tmp/munge"  # munged wants others to reach its socket
chown slurm:slurm "$tmp/state"
cp "$node_bin" "$check_bin" "$tmp/bin/"
(umask 077; echo "the slurm test's cluster secret" > "$tmp/secret")

runuser -u munge -- /usr/sbin/munged --socket="$tmp/munge/munge.sock" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/munge/munged.log" \
  --seed-file="$tmp/munge/munged.seed"
munge --socket="$tmp/munge/munge.sock" -n | unmunge --socket="$tmp/munge/munge.sock" | grep -q Success

cat > "$tmp/slurm.conf" <<CONF
ClusterName=picostest
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
NodeName=$host CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$tmp/slurm.conf"
/usr/sbin/slurmctld-wlm
/usr/sbin/slurmd-wlm
state=""
for _ in $(seq 600); do
  state="$(sinfo -h -o %T 2>/dev/null || true)"
  [ "$state" = "idle" ] && break
  sleep 0.1
done
if [ "$state" != "idle" ]; then
  echo "the one-host Slurm did not come up (node state '$state')" >&2
  tail -20 "$tmp/slurmctld.log" "$tmp/slurmd.log" >&2 || true
  exit 1
fi
echo "--- Slurm up: $(sinfo -h -o '%P %D %T %N')"

run_job() {  # name, extra exports; prints the job's output, gives its status
  local name="$1" exports="$2" status=0
  timeout 300 sbatch --wait -N1 -o "$tmp/jobs/$name.out" \
    --export="ALL,PICOS_BIN=$tmp/bin,PICOS_SECRET_FILE=$tmp/secret,PICOS_PORT=$picos_port,PICOS_CPUS=1,TMPDIR=$tmp/jobs$exports" \
    "$script" > /dev/null || status=$?
  echo "--- job $name: status $status"
  cat "$tmp/jobs/$name.out"
  return "$status"
}

run_job good ""
out="$tmp/jobs/good.out"
grep -qF "node tcp://$host:$picos_port up: $host@tcp://$host:$picos_port" "$out"
grep -qF "cluster: 1 of 1 nodes up" "$out"
grep -qF "client exited with status 0" "$out"
for exe in /proc/[0-9]*/exe; do
  if [ "$(readlink "$exe" 2>/dev/null)" = "$tmp/bin/picos-node" ]; then
    echo "a picos-node outlived its job: ${exe%/exe}" >&2; exit 1
  fi
done
[ -z "$(ls -A "$tmp/jobs" | grep picos-node || true)" ] || { echo "the job left its node folder" >&2; exit 1; }

# A node that does not exist: the client reports it and the job fails.
missing_port="$(free_port)"
if run_job missing ",PICOS_CLIENT=$tmp/bin/picos-cluster-check --wait=2s --peer=tcp://127.0.0.1:$missing_port"; then
  echo "a job whose client could not reach a node succeeded" >&2; exit 1
fi
grep -qF "node tcp://127.0.0.1:$missing_port down" "$tmp/jobs/missing.out"
grep -qF "cluster: 1 of 2 nodes up" "$tmp/jobs/missing.out"
echo "PASS"
