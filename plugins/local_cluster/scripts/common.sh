# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings of the local cluster scripts; sourced, never run.
# Every path lives outside the repository so a fresh clone reuses the builds.

K8S_VERSION="${LUMINA_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${LUMINA_ETCD_VERSION:-v3.6.16}"
COREDNS_VERSION="${LUMINA_COREDNS_VERSION:-v1.14.7}"
HELM_VERSION="${LUMINA_HELM_VERSION:-v3.22.0}"
# kube-router, run only as the NetworkPolicy controller (iptables + ipset).
KUBE_ROUTER_VERSION="${LUMINA_KUBE_ROUTER_VERSION:-v2.1.0}"
PAUSE_VERSION="3.10.1"

LUMINA_CACHE="${LUMINA_CACHE:-$HOME/.cache/lumina}"
K8S_BIN="$LUMINA_CACHE/k8s/$K8S_VERSION/bin"
LUMINA_BIN="$LUMINA_CACHE/bin"
SRC_DIR="$LUMINA_CACHE/k8s/src"
CLUSTER_DIR="$LUMINA_CACHE/cluster"
LOG_DIR="$CLUSTER_DIR/logs"
PID_DIR="$CLUSTER_DIR/pids"
PKI_DIR="$CLUSTER_DIR/pki"
KUBECONFIG_ADMIN="$CLUSTER_DIR/admin.kubeconfig"
CONTAINERD_SOCK="$CLUSTER_DIR/containerd/containerd.sock"

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >>"$LOG_DIR/lumina-cluster.log" 2>/dev/null || true; }
progress() { printf '[local-cluster] %s\n' "$*"; log "$*"; }
die() { printf '[local-cluster] error: %s\n' "$*" >&2; log "error: $*"; exit 1; }

NODE_NAME="${LUMINA_NODE_NAME:-lumina-node}"
CONTEXT_NAME="lumina-local"
APISERVER_PORT=6443
CLUSTER_CIDR="10.244.0.0/16"
POD_CIDR="10.244.0.0/24"
SERVICE_CIDR="10.96.0.0/16"
SERVICE_IP_APISERVER="10.96.0.1"
CLUSTER_DNS_IP="10.96.0.10"
PAUSE_IMAGE="lumina.local/pause:$PAUSE_VERSION"
COREDNS_IMAGE="lumina.local/coredns:$COREDNS_VERSION"
BUSYBOX_IMAGE="lumina.local/busybox:latest"
CTR=(ctr --address "$CONTAINERD_SOCK")
export KUBECONFIG="$KUBECONFIG_ADMIN"

# node_ip: the address of the interface holding the default route; the API
# server cannot advertise a loopback address, so that is the node's address.
node_ip() {
  local ip
  ip="$(ip -4 route get 1.1.1.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") {print $(i + 1); exit}}')"
  [[ -n "$ip" ]] || ip="$(ip -4 -o addr show scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')"
  [[ -n "$ip" ]] || die "no non-loopback IPv4 address on this machine: the node needs one (create a dummy interface with an address)"
  printf '%s' "$ip"
}

# pid_alive NAME: the recorded process still runs, and is still that component
# (after a reboot the same PID may belong to something else entirely).
pid_alive() {
  local f="$PID_DIR/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"
}

PYTHON="${LUMINA_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"
