#!/usr/bin/env bash
# Print the health of each component of the local cluster, one per line:
# "NAME STATE [detail]". Exits 0 when everything runs, 1 otherwise.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

ok=0
report() { printf '%-24s %s\n' "$1" "$2"; [[ "$2" == running* ]] || ok=1; }

# probe NAME COMMAND...: "running" if the process lives and answers COMMAND.
probe() {
  local name="$1"; shift
  if ! pid_alive "$name"; then report "$name" stopped; return; fi
  if "$@" >/dev/null 2>&1; then report "$name" "running (pid $(cat "$PID_DIR/$name.pid"))"
  else report "$name" "unhealthy (pid $(cat "$PID_DIR/$name.pid") does not answer; log $LOG_DIR/$name.log)"; fi
}
tls=(curl -sf --max-time 3 --cacert "$PKI_DIR/ca.crt" --cert "$PKI_DIR/admin.crt" --key "$PKI_DIR/admin.key")

probe containerd "${CTR[@]}" version
probe etcd curl -sf --max-time 3 http://127.0.0.1:2381/health
probe kube-apiserver "${tls[@]}" "https://127.0.0.1:$APISERVER_PORT/readyz"
probe kube-controller-manager curl -skf --max-time 3 https://127.0.0.1:10257/healthz
probe kube-scheduler curl -skf --max-time 3 https://127.0.0.1:10259/healthz
probe kubelet curl -sf --max-time 3 http://127.0.0.1:10248/healthz
probe kube-proxy curl -sf --max-time 3 http://127.0.0.1:10256/healthz
probe kube-router curl -sf --max-time 3 http://127.0.0.1:20244/healthz
probe provisioner true
probe image-registry curl -sf --max-time 3 "http://$NODE_REGISTRY/v2/"

kubectl=("$(kubectl_bin)" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=5s)
if pid_alive kube-apiserver; then
  ready="$("${kubectl[@]}" get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.nodeInfo.kubeletVersion}' 2>/dev/null)"
  if [[ "$ready" == True* ]]; then report node "running (Ready, ${ready#True })"; else report node "not ready (${ready:-not registered})"; fi
  dns="$("${kubectl[@]}" -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null)"
  if [[ "${dns:-0}" -ge 1 ]]; then report coredns "running ($dns ready)"; else report coredns "not ready"; fi
else
  report node stopped
  report coredns stopped
fi
exit $ok
