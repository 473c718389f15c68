#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`; install and start Debian's
# docker.io when it does not.  Idempotent: a working engine exits 0 at once.
#
# Used by `nox -s bootstrap`, CI and tools/base-images/build.sh.
#
# How the engine is run here (Debian as root, no systemd, cgroup v1):
#   * dockerd gets its OWN containerd on a private socket
#     (/run/lumina-docker/containerd/containerd.sock, CRI plugin off).  dockerd
#     20.10 silently adopts /run/containerd/containerd.sock whenever that path
#     exists -- even a stale one -- and the cluster's containerd (kubelet) may be
#     restarted or reconfigured at any time; a private one keeps both apart.
#   * cgroupfs cgroup driver: there is no systemd to delegate to.
#   * ip_forward is switched on BEFORE dockerd starts: dockerd only flips the
#     iptables FORWARD policy to DROP when it has to enable forwarding itself,
#     and a DROP policy silently cuts Kubernetes pod traffic on the same host.
#
# Building images: /usr/local/bin/docker may be a newer CLI (28) than Debian's
# engine (20.10); the CLI negotiates the API version down by itself.  Without
# the buildx plugin the CLI falls back to the legacy builder and prints a
# deprecation notice -- builds work.  Do NOT export DOCKER_BUILDKIT=1 unless
# buildx is installed: the CLI then refuses to build ("BuildKit is enabled but
# the buildx component is missing or broken").  The Python docker SDK always
# uses the legacy build API, so it is unaffected.
#
# Environment:
#   LUMINA_DOCKERD_WAIT   seconds to wait for the engine (default 60)
#   LUMINA_DOCKERD_LOG    dockerd log (default /var/log/lumina-dockerd.log)
#   LUMINA_DOCKER_CONTAINERD_LOG  its containerd's log
#                         (default /var/log/lumina-docker-containerd.log)
set -euo pipefail

WAIT=${LUMINA_DOCKERD_WAIT:-60}
LOG=${LUMINA_DOCKERD_LOG:-/var/log/lumina-dockerd.log}
CTRD_LOG=${LUMINA_DOCKER_CONTAINERD_LOG:-/var/log/lumina-docker-containerd.log}
RUN_DIR=/run/lumina-docker
CTRD_SOCK=$RUN_DIR/containerd/containerd.sock
CTRD_CONF=$RUN_DIR/containerd.toml
CTRD_PID=$RUN_DIR/containerd.pid
DOCKER_SOCK=/run/docker.sock
DOCKER_PID=/run/docker.pid
INSTALL_CMD="apt-get update && apt-get install -y --no-install-recommends docker.io"

say() { echo "ensure-docker: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

engine_ok() { timeout 10 docker info >/dev/null 2>&1; }

# detach COMMAND...: run COMMAND in its own session without any descriptor above 2
# of ours, so an engine started under a caller's flock(1) does not hold that lock.
detach() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid "$@"
    ) &
}

alive() { # pidfile -> true when it names a running process
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

if engine_ok; then
    exit 0
fi
command -v docker >/dev/null || say "note: no docker CLI on PATH; docker.io brings one"

if [[ ! -r /etc/debian_version ]]; then
    die "no working Docker engine, and this is not Debian, so I will not install one.
Install Docker Engine for your system (https://docs.docker.com/engine/install/) and start it,
then re-run $0."
fi
if [[ $(id -u) -ne 0 ]]; then
    die "no working Docker engine. Install and start it as root:
  sudo sh -c '$INSTALL_CMD' && sudo $0
or, if it is installed, add yourself to the docker group: sudo usermod -aG docker \$USER"
fi

# --- install --------------------------------------------------------------
if ! command -v dockerd >/dev/null || ! command -v containerd >/dev/null; then
    say "installing Debian's docker.io (dockerd, containerd, runc)"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() {
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends docker.io
    }
    # Package lists may be missing or stale on a fresh machine; update only then.
    if ! apt_install; then
        apt-get -o DPkg::Lock::Timeout=600 update
        apt_install || die "apt-get install docker.io failed (see above)"
    fi
fi

# --- containerd for dockerd -------------------------------------------------
mkdir -p "$RUN_DIR"
ctrd_ok() { timeout 5 ctr --address "$CTRD_SOCK" version >/dev/null 2>&1; }
if ! ctrd_ok; then
    if alive "$CTRD_PID"; then
        say "containerd (pid $(cat "$CTRD_PID")) is starting; waiting for it"
    else
        rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc"
        cat >"$CTRD_CONF" <<EOF
version = 2
root = "/var/lib/lumina-docker/containerd"
state = "$RUN_DIR/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD_SOCK"
[debug]
  address = ""
EOF
        say "starting containerd for dockerd (log: $CTRD_LOG)"
        detach containerd --config "$CTRD_CONF" >>"$CTRD_LOG" 2>&1 </dev/null
        echo $! >"$CTRD_PID"
    fi
    deadline=$((SECONDS + WAIT))
    until ctrd_ok || ((SECONDS >= deadline)); do sleep 1; done
    ctrd_ok || die "containerd did not answer on $CTRD_SOCK within ${WAIT}s; last log lines:
$(tail -n 20 "$CTRD_LOG" 2>/dev/null)"
fi

# --- dockerd ----------------------------------------------------------------
if alive "$DOCKER_PID"; then
    say "dockerd (pid $(cat "$DOCKER_PID")) is running but not answering yet; waiting"
else
    # A socket or pidfile left by a dockerd that died would make the CLI hang
    # on a dead socket or dockerd refuse to start.
    rm -f "$DOCKER_SOCK" "$DOCKER_PID"
    echo 1 >/proc/sys/net/ipv4/ip_forward || say "warning: could not enable ip_forward"
    say "starting dockerd (log: $LOG)"
    detach dockerd \
        --host "unix://$DOCKER_SOCK" \
        --pidfile "$DOCKER_PID" \
        --containerd "$CTRD_SOCK" \
        --exec-opt native.cgroupdriver=cgroupfs \
        >>"$LOG" 2>&1 </dev/null
fi

# Bounded by the clock, not by attempts: each probe may itself block for seconds.
started=$SECONDS
deadline=$((SECONDS + WAIT))
while ((SECONDS < deadline)); do
    if engine_ok; then
        say "Docker engine ready after $((SECONDS - started))s ($(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null))"
        exit 0
    fi
    sleep 1
done
die "Docker engine did not answer within ${WAIT}s; last lines of $LOG:
$(tail -n 30 "$LOG" 2>/dev/null)"
