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
# containerd's state (its tasks' mounts, the sandboxes' shm) lives on tmpfs, outside the
# cache; LUMINA_RUN_DIR moves it, e.g. for a second cache (and for the tests).
RUN_DIR="${LUMINA_RUN_DIR:-/run/lumina-cluster}"

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

# on_path_version TOOL: "PATH VERSION" of TOOL as this machine has it, when that is not one
# of ours (a link into the cache is handled by the built-binary check); nothing otherwise.
# LUMINA_KUBECTL / LUMINA_HELM name one explicitly.
on_path_version() {
  local tool="$1" override="" found real version=""
  case "$tool" in kubectl) override="${LUMINA_KUBECTL:-}" ;; helm) override="${LUMINA_HELM:-}" ;; esac
  found="${override:-$(command -v "$tool" 2>/dev/null || true)}"
  [[ -n "$found" && -x "$found" ]] || return 0
  real="$(readlink -f "$found")"
  [[ -n "$override" || "$real" != "$LUMINA_CACHE"/* ]] || return 0
  case "$tool" in
    kubectl) version="$("$found" version --client -o json 2>/dev/null \
      | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null || true)" ;;
    helm) version="$("$found" version --template '{{.Version}}' 2>/dev/null || true)" ;;
  esac
  [[ -n "$version" ]] && printf '%s %s' "$found" "$version"
}

# supported TOOL VERSION: kubectl within one minor of this cluster (Kubernetes' version
# skew policy for kubectl), Helm 3.8 or newer (pyhelm3 drives Helm 3 and 4).
supported() {
  local tool="$1" version="$2" minor want
  case "$tool" in
    kubectl)
      [[ "$version" =~ ^v1\.([0-9]+)\. ]] || return 1
      minor="${BASH_REMATCH[1]}"; want="${K8S_VERSION#v1.}"; want="${want%%.*}"
      ((minor >= want - 1 && minor <= want + 1)) ;;
    helm)
      [[ "$version" =~ ^v([0-9]+)\.([0-9]+)\. ]] || return 1
      ((BASH_REMATCH[1] > 3 || (BASH_REMATCH[1] == 3 && BASH_REMATCH[2] >= 8))) ;;
    *) return 1 ;;
  esac
}

# kubectl_bin: the kubectl the scripts run: the one built here, else the machine's own
# that build.sh chose (linked as $LUMINA_BIN/kubectl).
kubectl_bin() {
  if [[ -x "$K8S_BIN/kubectl" ]]; then printf '%s' "$K8S_BIN/kubectl"; else printf '%s' "$LUMINA_BIN/kubectl"; fi
}

PYTHON="${LUMINA_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}"

# The cluster's own image registry, on loopback only: images reach containerd through it,
# so a rebuilt image moves only its new layers (docker pushes what the registry lacks,
# containerd pulls what it lacks) instead of a whole `docker save` archive.
NODE_REGISTRY="127.0.0.1:${LUMINA_NODE_REGISTRY_PORT:-5005}"
node_registry_up() { curl -sf --max-time 2 "http://$NODE_REGISTRY/v2/" >/dev/null 2>&1; }
