#!/bin/bash
# One container of a lab pod, laid out like the pod-gateway image: run inside the pod's network
# namespace as PID 1 of its own PID, mount and UTS namespaces (its processes die with it, as in
# Kubernetes), chrooted into a root assembled from the host's /usr (read-only), overlays of the
# image's /bin and /etc on the host's, the image's /default_config and /config, and the pod's
# volumes. Every run starts from a fresh writable layer (a restarted container does too).
#
#   ip netns exec NS unshare --mount --pid --uts --fork --kill-child --propagation private \
#     container.sh CTDIR IMAGEDIR HOSTNAME MOUNTS -- COMMAND...
#
# MOUNTS: a file of "SOURCE DESTINATION" lines (a directory hides the image's directory, as a
# ConfigMap volume does; a file is a subPath mount). Files the container writes stay in CTDIR/root
# for the lab to read (the lab's work directory is removed at teardown).
set -euo pipefail
ct=$1 image=$2 host=$3 mounts=$4
shift 4
[ "${1:-}" = -- ] && shift
root=$ct/root
rm -rf "$ct"
mkdir -p "$root" "$ct"/bin.up "$ct"/bin.wk "$ct"/etc.up "$ct"/etc.wk
cd "$root"
mkdir -p usr bin etc proc sys dev tmp run var/lib/misc default_config config lab root
ln -s usr/lib lib
ln -s usr/lib64 lib64
ln -s usr/sbin sbin
ln -s ../run var/run
mount --bind /usr usr
mount -o remount,bind,ro usr
mount -t overlay overlay -o "lowerdir=$image/bin:/usr/bin,upperdir=$ct/bin.up,workdir=$ct/bin.wk" bin
mount -t overlay overlay -o "lowerdir=$image/etc:/etc,upperdir=$ct/etc.up,workdir=$ct/etc.wk" etc
mount --bind "$image/default_config" default_config
mount -o remount,bind,ro default_config
mount --bind "$image/config" config
mount --bind "$image/lab" lab
mount -t proc proc proc
mount --rbind /sys sys
mount --rbind /dev dev
mount -t tmpfs tmpfs tmp
while read -r src dst; do
  [ -z "$src" ] && continue
  t="$root$dst"
  if [ -d "$src" ]; then
    mkdir -p "$t"
  else
    mkdir -p "$(dirname "$t")"
    [ -e "$t" ] || : > "$t"
  fi
  mount --bind "$src" "$t"
done < "$mounts"
hostname "$host"
cd /
exec chroot "$root" /usr/bin/env -i \
  PATH=/lab/busybox:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOSTNAME="$host" HOME=/root TERM=dumb "$@"
