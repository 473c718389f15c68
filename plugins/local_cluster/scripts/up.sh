#!/usr/bin/env bash
# Start the local single-node Kubernetes cluster, building it first if needed.
# Idempotent: components already running are left alone, so a second `up` only
# checks health. State (etcd data, certificates, volumes) lives in
# ~/.cache/lumina/cluster and survives `down`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
config="$(cd "$here/../config" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

[[ "$(uname -s)" == Linux ]] || die "the local cluster needs Linux (found $(uname -s))"
[[ "$(id -u)" == 0 ]] || die "the local cluster runs a kubelet and must be started as root (try: sudo $0)"

mkdir -p "$CLUSTER_DIR" "$LOG_DIR" "$PID_DIR" "$CLUSTER_DIR/volumes" "$CLUSTER_DIR/cni/net.d" \
  "$CLUSTER_DIR/images" "$CLUSTER_DIR/etcd" "$RUN_DIR"
chmod 700 "$CLUSTER_DIR/etcd"
# One up or down at a time: two at once would start every component twice.
exec 8>"$CLUSTER_DIR/.lock"
flock -w 900 8 || die "another up.sh or down.sh has held $CLUSTER_DIR/.lock for 15 minutes"
started=$SECONDS

# --- host packages -----------------------------------------------------------
packages=(containerd runc containernetworking-plugins iptables ipset conntrack openssl
  busybox-static gcc libc6-dev python3 curl iproute2 kmod util-linux docker-registry)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  progress "installing ${missing[*]}"
  { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
      || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }; } \
    >>"$LOG_DIR/apt.log" 2>&1 || die "apt-get install ${missing[*]} failed; see $LOG_DIR/apt.log"
fi
CNI_BIN_DIR="${LUMINA_CNI_BIN_DIR:-/usr/lib/cni}"
for plugin in bridge host-local loopback portmap; do
  [[ -x "$CNI_BIN_DIR/$plugin" ]] || die "CNI plugin $plugin missing in $CNI_BIN_DIR (package containernetworking-plugins)"
done

"$here/build.sh"

NODE_IP="$(node_ip)"
export CLUSTER_DIR RUN_DIR PKI_DIR CONTAINERD_SOCK PAUSE_IMAGE CNI_BIN_DIR CLUSTER_DNS_IP POD_CIDR \
  CLUSTER_CIDR NODE_NAME NODE_IP COREDNS_IMAGE

# render TEMPLATE OUT: fill ${VAR} placeholders from the environment; an
# unknown placeholder is an error rather than an empty string in a config.
# The file is only written when its content changes: kube-proxy exits when its
# configuration file is touched. Prints "changed" or "same".
render() {
  "$PYTHON" - "$1" "$2" <<'PY'
import os, pathlib, string, sys
text = string.Template(pathlib.Path(sys.argv[1]).read_text()).substitute(os.environ)
out = pathlib.Path(sys.argv[2])
if out.exists() and out.read_text() == text:
    print("same")
else:
    partial = out.with_name(out.name + ".new")
    partial.write_text(text)
    os.replace(partial, out)
    print("changed")
PY
}

# Ports each component listens on: another process holding one (a second
# cluster, a leftover from a crash) must be named, not waited on for minutes.
declare -A PORTS=(
  [etcd]="2379 2380 2381" [kube-apiserver]="$APISERVER_PORT" [kube-controller-manager]="10257"
  [kube-scheduler]="10259" [kubelet]="10248 10250" [kube-proxy]="10249 10256" [kube-router]="20244"
  [image-registry]="${NODE_REGISTRY##*:}"
)

# start NAME COMMAND...: run a component detached, logging to its own file and
# recording its PID, unless it is already running.
start() {
  local name="$1"; shift
  if pid_alive "$name"; then return 0; fi
  local port holder
  for port in ${PORTS[$name]:-}; do
    holder="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'users:.*' | head -n1 || true)"
    [[ -z "$holder" ]] || die "cannot start $name: port $port is already in use ($holder); stop that process first"
  done
  progress "starting $name"
  # Logs are appended across restarts; keep one previous generation past 50 MB.
  local log="$LOG_DIR/$name.log"
  if [[ -f "$log" && $(stat -c %s "$log") -gt 52428800 ]]; then mv -f "$log" "$log.1"; fi
  # The component must not inherit (and so hold forever) any lock of its caller: this
  # script's own (fd 8) or one a caller took with flock(1) around it.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      if (( fd > 2 )); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec setsid "$@"
  ) >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$PID_DIR/$name.pid"
}

# process_running PID: the process exists and has not exited. Not pid_alive: a
# component just started is, until its exec, still this script's subshell closing
# inherited descriptors, and its command line does not name the component yet (on a
# busy machine long enough for a first failed probe to call it dead).
process_running() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds. When WHAT is a
# component that has exited meanwhile, say so at once with the end of its log.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -f "$PID_DIR/$what.pid" ]] && ! process_running "$(cat "$PID_DIR/$what.pid")"; then
      tail -n 15 "$LOG_DIR/$what.log" >&2
      die "$what exited during startup; log: $LOG_DIR/$what.log"
    fi
    ((SECONDS < deadline)) || die "$what not ready after ${timeout}s; see $LOG_DIR"
    sleep 1
  done
}

# --- kernel settings the pod network and localhost NodePorts need ------------
modprobe br_netfilter 2>/dev/null || true
modprobe overlay 2>/dev/null || true
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || die "net.bridge.bridge-nf-call-iptables unavailable: load the br_netfilter module"
sysctl -qw net.ipv4.conf.all.route_localnet=1
# Docker may set the FORWARD policy to DROP; pod traffic must pass anyway.
for dir in -s -d; do
  iptables -C FORWARD "$dir" "$CLUSTER_CIDR" -j ACCEPT 2>/dev/null || iptables -I FORWARD 1 "$dir" "$CLUSTER_CIDR" -j ACCEPT
done

"$here/pki.sh" "$NODE_NAME" "$NODE_IP"

# --- container runtime -------------------------------------------------------
# CAP_SYS_RESOURCE is capability 24; without it no process may lower its OOM score.
cap_eff="$(awk '/^CapEff/ {print $2}' /proc/self/status)"
if (( (16#$cap_eff >> 24) & 1 )); then RESTRICT_OOM_SCORE_ADJ=false; else RESTRICT_OOM_SCORE_ADJ=true; fi
export RESTRICT_OOM_SCORE_ADJ
if [[ "$(render "$config/containerd.toml" "$CLUSTER_DIR/containerd.toml")" == changed ]] && pid_alive containerd; then
  # containerd reads its configuration once; running pods survive the restart.
  progress "restarting containerd for its changed configuration"
  kill "$(cat "$PID_DIR/containerd.pid")" 2>/dev/null || true
  for _ in $(seq 1 100); do pid_alive containerd || break; sleep 0.2; done
fi
render "$config/10-lumina-bridge.conflist" "$CLUSTER_DIR/cni/net.d/10-lumina-bridge.conflist" >/dev/null
mkdir -p "$(dirname "$CONTAINERD_SOCK")"
start containerd containerd --config "$CLUSTER_DIR/containerd.toml"
wait_for containerd 60 "${CTR[@]}" version

# The cluster's own images exist only locally: made here, imported once.
image_present() { grep -qx -- "$1" <<<"$("${CTR[@]}" -n k8s.io images ls -q)"; }
if ! image_present "$PAUSE_IMAGE"; then
  progress "making the pause image"
  "$PYTHON" "$here/mkimage.py" "$CLUSTER_DIR/images/pause.tar" "$PAUSE_IMAGE" \
    --add "$K8S_BIN/pause:/pause" --entrypoint /pause --user 65535:65535
  "${CTR[@]}" -n k8s.io images import "$CLUSTER_DIR/images/pause.tar" >/dev/null
  rm -f "$CLUSTER_DIR/images/pause.tar"
fi
if ! image_present "$COREDNS_IMAGE"; then
  progress "building the CoreDNS image"
  "$PYTHON" "$here/mkimage.py" "$CLUSTER_DIR/images/coredns.tar" "$COREDNS_IMAGE" \
    --add "$K8S_BIN/coredns:/coredns" --entrypoint /coredns --user 65532:65532
  "${CTR[@]}" -n k8s.io images import "$CLUSTER_DIR/images/coredns.tar" >/dev/null
  rm -f "$CLUSTER_DIR/images/coredns.tar"
fi
if ! image_present "$BUSYBOX_IMAGE"; then
  progress "building the busybox image (for tests and debugging)"
  links=()
  for applet in $(/bin/busybox --list); do links+=(--symlink "/bin/$applet:busybox"); done
  "$PYTHON" "$here/mkimage.py" "$CLUSTER_DIR/images/busybox.tar" "$BUSYBOX_IMAGE" \
    --add /bin/busybox:/bin/busybox "${links[@]}" --cmd /bin/sh
  "${CTR[@]}" -n k8s.io images import "$CLUSTER_DIR/images/busybox.tar" >/dev/null
  rm -f "$CLUSTER_DIR/images/busybox.tar"
fi

# --- control plane -----------------------------------------------------------
start etcd "$K8S_BIN/etcd" --name "$NODE_NAME" --data-dir "$CLUSTER_DIR/etcd" \
  --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster "$NODE_NAME=http://127.0.0.1:2380" \
  --listen-metrics-urls http://127.0.0.1:2381 \
  --client-cert-auth --trusted-ca-file "$PKI_DIR/etcd-ca.crt" \
  --cert-file "$PKI_DIR/etcd-server.crt" --key-file "$PKI_DIR/etcd-server.key" \
  --snapshot-count 10000 --quota-backend-bytes 2147483648
wait_for etcd 60 curl -sf http://127.0.0.1:2381/health

start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --advertise-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
  --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$PKI_DIR/etcd-ca.crt" \
  --etcd-certfile "$PKI_DIR/apiserver-etcd-client.crt" --etcd-keyfile "$PKI_DIR/apiserver-etcd-client.key" \
  --client-ca-file "$PKI_DIR/ca.crt" \
  --tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
  --kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI_DIR/ca.crt" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --authorization-mode Node,RBAC \
  --enable-admission-plugins NodeRestriction,PodSecurity \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$PKI_DIR/sa.pub" \
  --service-account-signing-key-file "$PKI_DIR/sa.key" \
  --encryption-provider-config "$PKI_DIR/encryption.yaml" \
  --allow-privileged=true --profiling=false
wait_for kube-apiserver 120 curl -sf --cacert "$PKI_DIR/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz"

kubectl=("$(kubectl_bin)" --kubeconfig "$KUBECONFIG_ADMIN")

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key" \
  --root-ca-file "$PKI_DIR/ca.crt" --service-account-private-key-file "$PKI_DIR/sa.key" \
  --use-service-account-credentials=true \
  --service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" \
  --allocate-node-cidrs=true --node-cidr-mask-size 24 --profiling=false

start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false --profiling=false

# --- node --------------------------------------------------------------------
grep -v '^search\|^nameserver 127\.' /etc/resolv.conf >"$CLUSTER_DIR/resolv.conf" 2>/dev/null || true
render "$config/kubelet.yaml" "$CLUSTER_DIR/kubelet.yaml" >/dev/null
if [[ "$(render "$config/kube-proxy.yaml" "$CLUSTER_DIR/kube-proxy.yaml")" == changed ]] && pid_alive kube-proxy; then
  # It exits by itself on a changed file; make sure it is gone before start().
  kill "$(cat "$PID_DIR/kube-proxy.pid")" 2>/dev/null || true
  for _ in $(seq 1 50); do pid_alive kube-proxy || break; sleep 0.2; done
fi
start kubelet "$K8S_BIN/kubelet" --config "$CLUSTER_DIR/kubelet.yaml" \
  --kubeconfig "$CLUSTER_DIR/kubelet.kubeconfig" --root-dir "$CLUSTER_DIR/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
start kube-proxy "$K8S_BIN/kube-proxy" --config "$CLUSTER_DIR/kube-proxy.yaml"

# --- add-ons -----------------------------------------------------------------
wait_for "the node $NODE_NAME" 180 "${kubectl[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
COREFILE_INDENTED="$(sed 's/^/    /' "$config/Corefile")"
export COREFILE_INDENTED
render "$config/coredns.yaml" "$CLUSTER_DIR/coredns.yaml" >/dev/null
"${kubectl[@]}" apply -f "$CLUSTER_DIR/coredns.yaml" -f "$config/storage.yaml" \
  -f "$config/kube-router.yaml" >>"$LOG_DIR/addons.log"

# NetworkPolicies are enforced by kube-router's policy controller alone (no routing,
# no service proxy: the bridge CNI and kube-proxy do those): iptables chains and
# ipsets per pod, hooked into INPUT, FORWARD (bridged traffic too) and OUTPUT. It
# needs the node object, so it starts once the node is registered. Traffic from the
# node itself (kubelet probes, NodePorts on 127.0.0.1) is always let through.
start kube-router "$K8S_BIN/kube-router" --kubeconfig "$CLUSTER_DIR/kube-router.kubeconfig" \
  --hostname-override "$NODE_NAME" --run-firewall=true --run-router=false \
  --run-service-proxy=false --enable-cni=false --enable-ipv4=true --enable-ipv6=false \
  --service-cluster-ip-range "$SERVICE_CIDR" --health-port 20244 --metrics-port 0
wait_for kube-router 120 curl -sf http://127.0.0.1:20244/healthz

# Images reach containerd through this registry (see load-image.sh); its storage is
# the cluster's, kept across restarts like the images themselves.
cat >"$CLUSTER_DIR/image-registry.yml" <<EOF_REGISTRY
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $CLUSTER_DIR/image-registry}
  delete: {enabled: true}
http:
  addr: $NODE_REGISTRY
EOF_REGISTRY
start image-registry "$(command -v docker-registry)" serve "$CLUSTER_DIR/image-registry.yml"
wait_for image-registry 30 curl -sf "http://$NODE_REGISTRY/v2/"

start provisioner "$PYTHON" "$here/provisioner.py" --server "https://127.0.0.1:$APISERVER_PORT" \
  --ca "$PKI_DIR/ca.crt" --cert "$PKI_DIR/provisioner.crt" --key "$PKI_DIR/provisioner.key" \
  --root "$CLUSTER_DIR/volumes"

wait_for "CoreDNS" 180 "${kubectl[@]}" -n kube-system rollout status deployment/coredns --timeout=2s
# Ask the cluster DNS through its Service IP, which also proves kube-proxy.
wait_for "cluster DNS" 60 busybox nslookup kubernetes.default.svc.cluster.local "$CLUSTER_DNS_IP"

progress "cluster up in $((SECONDS - started))s: node $NODE_NAME ($NODE_IP), kubeconfig $KUBECONFIG_ADMIN, context $CONTEXT_NAME"
