#!/usr/bin/env bash
# Removes the pod cgroups a lab prefix created for agent mode's pods (lib/agent.ts): under every
# cgroup hierarchy, the kubelet's --cgroup-root of the lab (<prefix>.slice for the systemd driver,
# <prefix>/ for cgroupfs). Processes still in them are killed first (only those: they are the lab's
# pods), then the directories are removed deepest first. Usage: cgroups-down.sh PREFIX
set -u
P=${1:?usage: cgroups-down.sh PREFIX}
for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
  for top in "$root/$P.slice" "$root/$P"; do
    [ -d "$top" ] || continue
    for _ in 1 2 3; do
      pids=$(find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null)
      [ -z "$pids" ] && break
      kill -9 $pids 2>/dev/null
      sleep 0.2
    done
    find "$top" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done
exit 0
