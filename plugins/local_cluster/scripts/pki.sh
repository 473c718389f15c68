#!/usr/bin/env bash
# Generate the cluster's certificates and kubeconfigs with openssl, offline.
# Two CAs: one for Kubernetes, one for etcd, so a Kubernetes client certificate
# can never talk to etcd directly. Existing files are kept; only the two
# certificates that name the node IP are re-issued when that IP changes.
# Usage: pki.sh NODE_NAME NODE_IP
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

node_name="$1" node_ip="$2"
mkdir -p "$PKI_DIR" && chmod 700 "$PKI_DIR"
cd "$PKI_DIR"
umask 077

new_ca() { # NAME CN
  [[ -f "$1.crt" ]] && return 0
  openssl genrsa -out "$1.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$1.crt"
}

# new_cert NAME CA SUBJECT USAGES [SANS]: USAGES is serverAuth, clientAuth or both.
new_cert() {
  local name="$1" ca="$2" subject="$3" usages="$4" sans="${5:-}"
  [[ -f "$name.crt" ]] && return 0
  openssl genrsa -out "$name.key" 2048 2>/dev/null
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usages"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

if [[ -f node-ip && "$(cat node-ip)" != "$node_ip" ]]; then
  rm -f apiserver.crt apiserver.key kubelet-server.crt kubelet-server.key
fi
echo "$node_ip" >node-ip

new_ca ca lumina-kubernetes-ca
new_ca etcd-ca lumina-etcd-ca

new_cert etcd-server etcd-ca "/CN=etcd-server" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
new_cert apiserver-etcd-client etcd-ca "/CN=kube-apiserver-etcd-client" clientAuth
new_cert apiserver ca "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$node_name,IP:127.0.0.1,IP:$SERVICE_IP_APISERVER,IP:$node_ip"
new_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
new_cert kubelet-server ca "/CN=$node_name" serverAuth "DNS:$node_name,DNS:localhost,IP:127.0.0.1,IP:$node_ip"
new_cert admin ca "/O=system:masters/CN=lumina-admin" clientAuth
new_cert kubelet ca "/O=system:nodes/CN=system:node:$node_name" clientAuth
new_cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
new_cert scheduler ca "/CN=system:kube-scheduler" clientAuth
new_cert kube-proxy ca "/CN=system:kube-proxy" clientAuth
new_cert provisioner ca "/CN=lumina:hostpath-provisioner" clientAuth
new_cert kube-router ca "/CN=lumina:kube-router" clientAuth

[[ -f sa.key ]] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }

# Secrets are encrypted in etcd with a key that never leaves this directory.
if [[ ! -f encryption.yaml ]]; then
  cat >encryption.yaml <<YAML
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - secretbox:
          keys:
            - name: key1
              secret: $(head -c 32 /dev/urandom | base64 -w0)
      - identity: {}
YAML
fi

kubeconfig() { # FILE USER CERT SERVER
  local file="$1" user="$2" cert="$3" server="$4"
  cat >"$file.new" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: lumina-local
    cluster:
      server: $server
      certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
  - name: $user
    user:
      client-certificate-data: $(base64 -w0 <"$PKI_DIR/$cert.crt")
      client-key-data: $(base64 -w0 <"$PKI_DIR/$cert.key")
contexts:
  - name: lumina-local
    context: {cluster: lumina-local, user: $user}
current-context: lumina-local
YAML
  # Replaced atomically and only when different: a client reading the file
  # while `up` runs again must never see it half written.
  chmod 600 "$file.new"
  if cmp -s "$file.new" "$file"; then rm -f "$file.new"; else mv -f "$file.new" "$file"; fi
}

# Regenerated on every run: cheap, and picks up re-issued certificates.
local_server="https://127.0.0.1:$APISERVER_PORT"
kubeconfig "$KUBECONFIG_ADMIN" lumina-admin admin "$local_server"
kubeconfig "$CLUSTER_DIR/kubelet.kubeconfig" "system:node:$node_name" kubelet "$local_server"
kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager "$local_server"
kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler "$local_server"
kubeconfig "$CLUSTER_DIR/kube-proxy.kubeconfig" system:kube-proxy kube-proxy "$local_server"
kubeconfig "$CLUSTER_DIR/kube-router.kubeconfig" lumina:kube-router kube-router "$local_server"
