#!/usr/bin/env bash
# Stop the local cluster and remove its state, so that the next `up` starts it from
# empty: new certificates, an empty etcd, no images, volumes or registry storage. The
# compile cache stays, so that `up` rebuilds nothing: the built binaries and Go wrapper
# modules (~/.cache/lumina/k8s), helm and the kubectl link (~/.cache/lumina/bin),
# everything else beside cluster/, and Go's own caches (outside ~/.cache/lumina). The
# logs stay too. Prints what it removes and what it keeps; asks nothing.
# Usage: wipe.sh [--dry-run]   (--dry-run stops nothing and only says what would go)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

dry_run=false
case "${1:-}" in
  "") ;;
  --dry-run) dry_run=true ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
# Where CNI keeps what each ADD returned (libcni's default): it names each pod's netns.
CNI_CACHE_DIR="${LUMINA_CNI_CACHE_DIR:-/var/lib/cni}"

# Everything removed lies in $CLUSTER_DIR or $RUN_DIR (both from common.sh). Each must
# be an absolute path at least two levels deep: an empty or unset variable must never
# turn into `rm -rf /...`. Prints the path with symlinks resolved (as mounts are listed).
checked_dir() { # VARIABLE
  local value="${!1:-}" resolved
  [[ "$value" == /* ]] || die "$1 is '$value', not an absolute path: refusing to wipe"
  resolved="$(realpath -m -- "$value")"
  [[ "$resolved" == /?*/?* ]] || die "$1 resolves to '$resolved', too close to /: refusing to wipe"
  printf '%s' "$resolved"
}
checked_dir LUMINA_CACHE >/dev/null
[[ "$CLUSTER_DIR" == "$LUMINA_CACHE/cluster" ]] || die "CLUSTER_DIR ($CLUSTER_DIR) is not \$LUMINA_CACHE/cluster: refusing to wipe"
cluster_dir="$(checked_dir CLUSTER_DIR)"
run_dir="$(checked_dir RUN_DIR)"

# what_it_is NAME: what an entry of $CLUSTER_DIR holds, when it is cluster state (what
# up.sh, pki.sh and load-image.sh write there); nothing otherwise. Not state: logs/ (the
# components', the build's and this script's logs) and .lock (held while this runs;
# removing it would let an up.sh run beside this one). A new state file belongs here.
what_it_is() {
  case "$1" in
    etcd) echo "etcd's data: every Kubernetes object" ;;
    containerd) echo "the cluster's containerd (not the Docker engine's): images, content, snapshots, metadata" ;;
    kubelet) echo "the kubelet's pods and their volumes" ;;
    volumes) echo "the PersistentVolumes' data (the provisioner's directories)" ;;
    image-registry) echo "the node image registry's storage" ;;
    pki) echo "the certificates and keys: both CAs, service-account and Secrets encryption keys" ;;
    *.kubeconfig) echo "a kubeconfig" ;;
    cni) echo "the pod network's configuration and address reservations" ;;
    pids) echo "the components' PID files" ;;
    images) echo "the cluster's own images while they are made" ;;
    loaded-images) echo "the record of images loaded into containerd" ;;
    containerd.toml | kubelet.yaml | kube-proxy.yaml | coredns.yaml | resolv.conf | image-registry.yml)
      echo "configuration rendered by up.sh" ;;
    *.new) echo "a configuration half rendered by up.sh" ;;
  esac
}

# mounts_under DIR...: the mount points at or below each DIR, deepest (and latest) first,
# NUL-separated: the kubelet's bind mount of its own root and the pods' volumes in it,
# containerd's sandbox shm and task root filesystems.
mounts_under() {
  "$PYTHON" - "$@" <<'PY'
import re, sys
dirs = sys.argv[1:]
points = []
with open("/proc/self/mountinfo") as table:
    for line in table:
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if any(point == d or point.startswith(d + "/") for d in dirs):
            points.append(point)
points.reverse()
points.sort(key=lambda p: p.count("/"), reverse=True)
sys.stdout.write("".join(p + "\0" for p in points))
PY
}

# pod_netns: the network namespaces of the pods this cluster's IPAM gave an address
# (each host-local reservation in cni/ipam names a pod sandbox; CNI's cache names its
# namespace). down.sh leaves them for the kubelet to remove on the next `up`; without
# containerd's records nothing would, and each would keep its address on the bridge
# while the next pods are handed the same addresses.
pod_netns() {
  "$PYTHON" - "$CLUSTER_DIR/cni/ipam" "$CNI_CACHE_DIR/results" <<'PY'
import ipaddress, json, pathlib, sys
ipam, results = map(pathlib.Path, sys.argv[1:])
found = set()
for reservation in ipam.glob("*/*") if ipam.is_dir() else ():
    try:
        ipaddress.ip_address(reservation.name)
        sandbox = reservation.read_text().split()[0]
    except (ValueError, IndexError, OSError):
        continue  # the lock and last_reserved_ip files, or an empty one
    for cached in results.glob(f"*-{sandbox}-*") if results.is_dir() else ():
        try:
            interfaces = json.loads(cached.read_text())["result"]["interfaces"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.update(i["sandbox"] for i in interfaces if isinstance(i, dict) and i.get("sandbox"))
sys.stdout.write("".join(path + "\0" for path in sorted(found)))
PY
}

# still_running: "PID command" of each process that names a path of the cluster's state
# (its logs and admin.kubeconfig aside): a component whose PID file was lost, a pod's
# shim left by a containerd that died. Wiping under them would leave pods running on
# deleted files, holding their addresses.
still_running() {
  CLUSTER_DIR="$cluster_dir" RUN_DIR="$run_dir" LOG_DIR="$LOG_DIR" CONTAINERD_SOCK="$CONTAINERD_SOCK" \
    KUBECONFIG_ADMIN="$KUBECONFIG_ADMIN" "$PYTHON" - <<'PY'
import os, pathlib
env = os.environ
dirs = [env["CLUSTER_DIR"] + "/", env["RUN_DIR"] + "/"]
ignored = (env["LOG_DIR"] + "/", env["KUBECONFIG_ADMIN"])
for proc in pathlib.Path("/proc").glob("[0-9]*"):
    if int(proc.name) in (os.getpid(), os.getppid()):
        continue
    try:
        args = proc.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        continue
    paths = [a.partition("=")[2] if a.startswith("-") and "=" in a else a for a in args]
    if any(p.startswith(tuple(dirs)) and not p.startswith(ignored) for p in paths):
        print(proc.name, " ".join(args).strip()[:200])
PY
}

# remove PATH WHAT: remove one entry of a state directory, saying what it was.
remove() {
  local path="$1" what="$2" size
  [[ "$path" == "$cluster_dir"/?* || "$path" == "$run_dir"/?* ]] || die "refusing to remove $path: not in $cluster_dir or $run_dir"
  size="$(du -sh -- "$path" 2>/dev/null | cut -f1)" || size="?"
  if $dry_run; then progress "would remove $path ($size): $what"; return; fi
  progress "removing $path ($size): $what"
  rm -rf --one-file-system -- "$path"
}

if $dry_run; then
  progress "dry run: nothing is stopped, unmounted or removed"
else
  mkdir -p "$CLUSTER_DIR" "$LOG_DIR"
  # One up, down or wipe at a time (the lock of up.sh and down.sh), held from the
  # stop to the last removal: no `up` can start on half-removed state. down.sh takes
  # it over from descriptor 8.
  exec 8>"$CLUSTER_DIR/.lock"
  flock -w 900 8 || die "another up.sh, down.sh or wipe.sh has held $CLUSTER_DIR/.lock for 15 minutes"
  progress "wiping the local cluster: stopping it first"
  "$here/down.sh"
  running="$(still_running)"
  [[ -z "$running" ]] || die "processes of the cluster still run after down.sh, wiping under them is refused:
$running
stop them (or run up.sh, which takes them over, then wipe.sh again)"
fi

mapfile -d '' namespaces < <(pod_netns)
for netns in "${namespaces[@]}"; do
  name="${netns##*/}"
  if [[ "$netns" != /run/netns/"$name" && "$netns" != /var/run/netns/"$name" ]]; then
    progress "keeping network namespace $netns: not one of ip-netns(8)'s, remove it by hand"
  elif [[ ! -e "$netns" ]]; then
    continue
  elif $dry_run; then
    progress "would delete the pods' network namespace $name"
  else
    progress "deleting the pods' network namespace $name"
    if ! ip netns delete "$name" 2>/dev/null; then
      # Its file can be held busy (a mount seen from another mount namespace): then
      # empty it instead, so no link in it answers for an address the fresh IPAM hands
      # out again; the empty namespace left behind holds nothing.
      progress "network namespace $name is held busy: left, its links go with the bridge's below"
    fi
  fi
done

# The cluster is stopped: every veth still on its bridge is a pod's that will not come
# back, and its other end (in a namespace that could not be deleted) would answer for
# an address the fresh IPAM hands out again. Deleting one end deletes the pair.
bridge="$(sed -n 's/.*"bridge": *"\([^"]*\)".*/\1/p' "$here/../config/10-lumina-bridge.conflist" | head -1)"
if pgrep -x kubelet >/dev/null; then
  # Another local cluster (another LUMINA_CACHE) runs: the bridge's links are its pods'.
  progress "a kubelet still runs on this machine: the links on bridge $bridge are left alone"
elif [[ -n "$bridge" ]] && ip link show "$bridge" >/dev/null 2>&1; then
  while read -r link; do
    [[ -n "$link" ]] || continue
    if $dry_run; then
      progress "would delete $link, a pod's link left on bridge $bridge"
    else
      progress "deleting $link, a pod's link left on bridge $bridge"
      ip link delete "$link" 2>/dev/null || progress "could not delete $link (left)"
    fi
  done < <(ip -o link show master "$bridge" type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1)
fi

for round in 1 2 3 4 5; do
  mapfile -d '' mounts < <(mounts_under "$cluster_dir" "$run_dir")
  ((${#mounts[@]})) || break
  if $dry_run; then
    for point in "${mounts[@]}"; do progress "would unmount $point"; done
    break
  fi
  ((round < 5)) || die "still mounted after 4 rounds of umount: ${mounts[*]}"
  for point in "${mounts[@]}"; do
    progress "unmounting $point"
    # Lazily where busy: nothing of the cluster runs any more, so nothing can use it. One
    # hidden under a mount made after it comes free once that one is gone: next round.
    umount -- "$point" 2>/dev/null || umount -l -- "$point" 2>/dev/null \
      || progress "  $point cannot be unmounted yet; trying again after the others"
  done
done

shopt -s nullglob dotglob
for path in "$cluster_dir"/*; do
  name="${path##*/}"
  case "$name" in
    logs) progress "keeping $path (the logs, the build's too)"; continue ;;
    .lock | .load-image.lock) continue ;;
  esac
  what="$(what_it_is "$name")"
  if [[ -n "$what" ]]; then remove "$path" "$what"; else progress "keeping $path: not known as cluster state"; fi
done
for path in "$run_dir"/*; do
  if [[ "${path##*/}" == containerd ]]; then
    remove "$path" "the cluster's containerd's run state: tasks, the sandboxes' shm"
  else
    progress "keeping $path: not known as cluster state"
  fi
done
$dry_run || rmdir -- "$run_dir" 2>/dev/null || true

for path in "$LUMINA_CACHE"/*; do
  case "${path##*/}" in
    cluster) ;;
    k8s) progress "keeping $path (the built Kubernetes, etcd, CoreDNS, kube-router and pause binaries; Go wrapper modules)" ;;
    bin) progress "keeping $path (helm, the kubectl link)" ;;
    *) progress "keeping $path" ;;
  esac
done
if go_caches="$(go env GOMODCACHE GOCACHE 2>/dev/null | paste -sd ' ')" && [[ -n "$go_caches" ]]; then
  progress "keeping Go's caches: $go_caches"
fi
if $dry_run; then
  progress "dry run done: wipe.sh without --dry-run removes the above"
else
  progress "cluster wiped; the next up starts it from empty (new certificates, an empty etcd) without building anything"
fi
