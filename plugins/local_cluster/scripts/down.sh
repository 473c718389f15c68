#!/usr/bin/env bash
# Stop the local cluster: every component by the PID that up.sh recorded, and
# the pods' containers, so nothing of the cluster keeps running. State is
# kept (etcd data, certificates, images, volumes): `up` again is quick and the
# PersistentVolume data survives.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"
mkdir -p "$LOG_DIR" "$CLUSTER_DIR"
# One up or down at a time: two at once would start every component twice. A caller
# that holds the lock already (wipe.sh) hands it down as descriptor 8: flock on that
# same open file succeeds at once, where opening the file again would wait on itself.
if [[ "$(readlink -f "/proc/$$/fd/8" 2>/dev/null)" != "$(readlink -f "$CLUSTER_DIR/.lock")" ]]; then
  exec 8>"$CLUSTER_DIR/.lock"
fi
flock -w 900 8 || die "another up.sh or down.sh has held $CLUSTER_DIR/.lock for 15 minutes"

stop() { # NAME: TERM, then KILL after 20 s
  local name="$1" file="$PID_DIR/$1.pid" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if pid_alive "$name"; then
    progress "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # pid_alive, not kill -0: an exited component can linger as a zombie until
    # init reaps it, and kill -0 still succeeds on a zombie.
    for _ in $(seq 1 100); do pid_alive "$name" || break; sleep 0.2; done
    if pid_alive "$name"; then
      progress "$name did not stop on TERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

# Control loops first, so nothing restarts what is being stopped.
for name in image-registry provisioner kube-router kube-proxy kubelet kube-scheduler kube-controller-manager; do stop "$name"; done

# The pods' containers: the kubelet re-creates them on the next `up`.
if pid_alive containerd; then
  tasks="$("${CTR[@]}" -n k8s.io tasks ls -q 2>/dev/null || true)"
  if [[ -n "$tasks" ]]; then
    progress "stopping $(wc -w <<<"$tasks") pod containers"
    for task in $tasks; do "${CTR[@]}" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true; done
    sleep 1
    for task in $tasks; do "${CTR[@]}" -n k8s.io tasks delete "$task" >/dev/null 2>&1 || true; done
  fi
fi

for name in kube-apiserver etcd containerd; do stop "$name"; done
progress "cluster stopped; state kept in $CLUSTER_DIR"
