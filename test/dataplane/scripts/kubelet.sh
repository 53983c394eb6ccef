#!/bin/bash
# Restarts a container the way the kubelet restarts a pod's container (restartPolicy Always, a
# native sidecar): after every exit, whatever the code, a back-off of 10 s doubling to 300 s, reset
# once the container has run for 10 minutes. Each exit is logged to RESTART_LOG.
#   kubelet.sh RESTART_LOG -- COMMAND...
set -u
log=$1
shift
[ "${1:-}" = -- ] && shift
backoff=10
while :; do
  start=$(date +%s.%N)
  "$@"
  rc=$?
  end=$(date +%s.%N)
  ran=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  if awk -v r="$ran" 'BEGIN { exit !(r >= 600) }'; then backoff=10; fi
  echo "$end exit rc=$rc after ${ran}s; restart in ${backoff}s" >> "$log"
  sleep "$backoff"
  backoff=$((backoff * 2))
  [ "$backoff" -gt 300 ] && backoff=300
done
