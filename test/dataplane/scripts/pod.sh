#!/usr/bin/env bash
# The lab's kubelet + container runtime for one agent-mode pod (its network namespace already made
# by the lab, as the CNI plugin makes it). In the order a kubelet runs a pod:
#   1. the sandbox: a pause-like process in the pod's network namespace, in the sandbox's cgroup;
#   2. the init container (the gate, the webhook's command): its own cgroup under the pod's, the
#      pod's network namespace, uid/gid 65532, no capabilities (bounding set empty), no new privileges;
#   3. only when the init container exited 0: the app container (a process that stays), its own cgroup.
# A gate that exits non-zero is not retried (a kubelet would retry with back-off): the state
# directory records what happened (gate.rc, gate.log, app.started).
# Usage: pod.sh NETNS STATE_DIR -- GATE_ARGV...
# Env: CG_SANDBOX, CG_GATE, CG_APP: the container cgroup directories (one per cgroup hierarchy,
# space-separated), created here; the kubelet's pod-level directories above them are made by the lab.
set -u
NETNS=$1
STATE=$2
shift 3
mkdir -p "$STATE"

enter() { # join every listed cgroup (this shell's PID), then exec the rest
  local dirs=$1
  shift
  for d in $dirs; do
    mkdir -p "$d"
    echo "$BASHPID" >"$d/cgroup.procs"
  done
  exec "$@"
}
NOPRIV=(setpriv --reuid=65532 --regid=65532 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs)

stamp() { date +%s%3N >"$STATE/$1.tmp" && mv "$STATE/$1.tmp" "$STATE/$1"; } # written whole: the lab polls for them
(enter "$CG_SANDBOX" ip netns exec "$NETNS" sleep infinity) &
# The sandbox is up once its process is in its cgroup (what discovery needs), as the kubelet reports
# the pod only after the runtime started the sandbox.
first=${CG_SANDBOX%% *}
for _ in $(seq 200); do [ -s "$first/cgroup.procs" ] && break; sleep 0.01; done
stamp sandbox.started

(enter "$CG_GATE" ip netns exec "$NETNS" "${NOPRIV[@]}" "$@") >"$STATE/gate.log" 2>&1
rc=$?
stamp gate.exited
echo "$rc" >"$STATE/gate.rc.tmp" && mv "$STATE/gate.rc.tmp" "$STATE/gate.rc"
if [ "$rc" -ne 0 ]; then
  wait # the sandbox stays (as a pod whose init container failed)
  exit 0
fi
stamp app.started
(enter "$CG_APP" ip netns exec "$NETNS" "${NOPRIV[@]}" sleep infinity) &
wait
