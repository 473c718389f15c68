#!/usr/bin/env bash
# Build every binary the local cluster runs, from the Go module proxy, into
# ~/.cache/lumina -- except kubectl and helm when the machine already has them at a
# version this cluster supports (see `supported` in common.sh; LUMINA_KUBECTL and
# LUMINA_HELM name one explicitly). Idempotent: a binary already present is not rebuilt, so a
# second run takes a second. Verbose compiler output goes to the build log;
# the terminal gets one progress line per binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

# Too many parallel compilers starve everyone else sharing the CPU.
jobs="${LUMINA_BUILD_JOBS:-2}"
# A module that needs a newer Go than the local one gets it from the proxy.
export GOTOOLCHAIN="${LUMINA_GOTOOLCHAIN:-auto}"
export GOFLAGS="-trimpath -mod=mod -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$K8S_BIN" "$LUMINA_BIN" "$SRC_DIR" "$LOG_DIR"
# Two builds at once (two terminals, CI and a user) would write the same files.
exec 9>"$LUMINA_CACHE/build.lock"
flock -w 3600 9 || die "another build.sh has held $LUMINA_CACHE/build.lock for an hour"
build_log="$LOG_DIR/build.log"
: >>"$build_log"

# CI may run with a PATH that lacks the toolchain's usual home.
command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && PATH="$PATH:/usr/local/go/bin"; }
# Checked only when something must be built: cached binaries run without Go.
need_go() {
  command -v go >/dev/null || die "go is not installed and $1 is not built yet: install Go 1.24 or newer (e.g. Debian trixie's golang-go) and run again"
}

all_targets=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd coredns helm pause
  kube-router)
# `build.sh etcd coredns` builds only those; no argument builds everything.
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all_targets[@]}"); fi
for target in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $target "* ]] || die "unknown target '$target' (one of: ${all_targets[*]})"
done
total=${#targets[@]}
step=0

# wrapper_module DIR MODULE VERSION: an empty main module that requires MODULE,
# so `go build` can compile its commands with this module's replace directives.
wrapper_module() {
  local dir="$1" module="$2" version="$3"
  if [[ -f "$dir/.ready" ]]; then return 0; fi
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init lumina.local/build-wrapper >>"$build_log" 2>&1 \
    && go mod edit -require="$module@$version")
}

# The kubernetes module replaces each k8s.io staging module with a directory in
# its own tree; those directives are ignored in a dependency, so the wrapper
# pins each one to the tag released together with this kubernetes version
# (v1.34.4 -> v0.34.4). The list comes from the module's own go.mod.
kubernetes_wrapper() {
  local dir="$SRC_DIR/kubernetes-$K8S_VERSION"
  [[ -f "$dir/.ready" ]] && return 0
  progress "fetching k8s.io/kubernetes@$K8S_VERSION (large, one time)"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  wrapper_module "$dir" k8s.io/kubernetes "$K8S_VERSION"
  local staging_version="v0.${K8S_VERSION#v1.}"
  local go_line godebug_line
  go_line="$(awk '$1 == "go" {print $2; exit}' "$gomod")"
  godebug_line="$(awk '$1 == "godebug" {print $2; exit}' "$gomod")"
  local -a edits=(-go="$go_line")
  [[ -n "$godebug_line" ]] && edits+=(-godebug="$godebug_line")
  local count=0
  while read -r from to; do
    if [[ "$to" == ./staging/* ]]; then
      edits+=(-replace="$from=$from@$staging_version")
    else
      # A replace to another released module is kept exactly as upstream has it.
      edits+=(-replace="$from=${to/ /@}")
    fi
    count=$((count + 1))
  done < <(awk '
    /^replace \(/ {inblock=1; next}
    inblock && /^\)/ {inblock=0; next}
    inblock && /=>/ {split($0, p, "=>"); gsub(/^[ \t]+|[ \t]+$/, "", p[1]); gsub(/^[ \t]+|[ \t]+$/, "", p[2]); print p[1], p[2]}
    /^replace [^(]/ {sub(/^replace /, ""); split($0, p, "=>"); gsub(/^[ \t]+|[ \t]+$/, "", p[1]); gsub(/^[ \t]+|[ \t]+$/, "", p[2]); print p[1], p[2]}
  ' "$gomod")
  [[ $count -gt 0 ]] || die "found no replace directives in $gomod: cannot pin the staging modules"
  (cd "$dir" && go mod edit "${edits[@]}")
  log "kubernetes wrapper: pinned $count staging modules to $staging_version"
  touch "$dir/.ready"
}

kubernetes_ldflags() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  printf '%s' "$flags"
}

# go_build OUT DIR PACKAGE LDFLAGS: compile into a temporary name and rename,
# so an interrupted build never leaves a half-written binary that looks done.
go_build() {
  local out="$1" dir="$2" pkg="$3" ldflags="$4"
  local start=$SECONDS name ticker status=0
  name="$(basename "$out")"
  # -v names each package as it is compiled: counting them is the progress
  # shown every minute, since one binary can take a quarter of an hour.
  local step_log="$LOG_DIR/build-$name.log"
  : >"$step_log"
  (
    while sleep 60; do
      progress "  … $name: $(grep -cv '^go: ' "$step_log" || true) packages compiled so far"
    done
  ) &
  ticker=$!
  (cd "$dir" && go build -v -p "$jobs" -ldflags="$ldflags" -o "$out.partial" "$pkg") >"$step_log" 2>&1 || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  cat "$step_log" >>"$build_log" && rm -f "$step_log"
  if ((status != 0)); then
    tail -n 30 "$build_log" >&2
    die "building $name failed; full log: $build_log"
  fi
  mv "$out.partial" "$out"
  progress "  built $(basename "$out") in $((SECONDS - start))s ($(du -h "$out" | cut -f1))"
}

next() { need_go "$1"; step=$((step + 1)); progress "building $1 ($step/$total)…"; }

for target in "${targets[@]}"; do
  case "$target" in
    helm) out="$LUMINA_BIN/helm" ;;
    *) out="$K8S_BIN/$target" ;;
  esac
  # The version a binary was built at is stamped beside it, so changing a
  # pinned version in common.sh rebuilds just that binary.
  case "$target" in
    etcd) want="$ETCD_VERSION" ;; coredns) want="$COREDNS_VERSION" ;; helm) want="$HELM_VERSION" ;;
    kube-router) want="$KUBE_ROUTER_VERSION" ;;
    pause) want="$K8S_VERSION-$PAUSE_VERSION" ;; *) want="$K8S_VERSION" ;;
  esac
  have=""
  if [[ "$target" == helm && -x "$out" ]]; then
    have="$("$out" version --template '{{.Version}}' 2>/dev/null || true)"
  elif [[ -f "$out.version" ]]; then
    have="$(cat "$out.version")"
  elif [[ -x "$out" && "$target" != etcd && "$target" != coredns && "$target" != kube-router ]]; then
    have="$want"  # under a directory named after its Kubernetes version
  fi
  if [[ -x "$out" && "$have" == "$want" ]]; then
    step=$((step + 1)); progress "$target $want already built ($step/$total)"; continue
  fi
  # kubectl and helm are tools users often have: one of a supported version is used
  # as it is (the machine's own package, a user's download) rather than compiled.
  if [[ "$target" == kubectl || "$target" == helm ]]; then
    read -r found version <<<"$(on_path_version "$target")" || true
    case "$target" in kubectl) explicit="${LUMINA_KUBECTL:-}" ;; *) explicit="${LUMINA_HELM:-}" ;; esac
    if [[ -n "${found:-}" ]]; then
      # One named explicitly is the user's choice, whatever its version.
      if supported "$target" "$version" || [[ -n "$explicit" ]]; then
        step=$((step + 1)); progress "$target: using $found ($version), not building ($step/$total)"
        [[ "$target" == kubectl ]] && ln -sfn "$found" "$LUMINA_BIN/kubectl"
        continue
      fi
      progress "$target: $found is $version, outside what this cluster supports: building $want"
    fi
  fi
  next "$target"
  case "$target" in
    kube-router) # before kube-*, which names the kubernetes commands
      wrapper_module "$SRC_DIR/kube-router-$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2 "$KUBE_ROUTER_VERSION"
      touch "$SRC_DIR/kube-router-$KUBE_ROUTER_VERSION/.ready"
      go_build "$out" "$SRC_DIR/kube-router-$KUBE_ROUTER_VERSION" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
        "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" ;;
    kube-*|kubelet|kubectl)
      kubernetes_wrapper
      go_build "$out" "$SRC_DIR/kubernetes-$K8S_VERSION" "k8s.io/kubernetes/cmd/$target" "$(kubernetes_ldflags)" ;;
    etcd)
      wrapper_module "$SRC_DIR/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
      touch "$SRC_DIR/etcd-$ETCD_VERSION/.ready"
      go_build "$out" "$SRC_DIR/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 "-s -w" ;;
    coredns)
      wrapper_module "$SRC_DIR/coredns-$COREDNS_VERSION" github.com/coredns/coredns "$COREDNS_VERSION"
      touch "$SRC_DIR/coredns-$COREDNS_VERSION/.ready"
      go_build "$out" "$SRC_DIR/coredns-$COREDNS_VERSION" github.com/coredns/coredns "-s -w" ;;
    helm)
      wrapper_module "$SRC_DIR/helm-$HELM_VERSION" helm.sh/helm/v3 "$HELM_VERSION"
      touch "$SRC_DIR/helm-$HELM_VERSION/.ready"
      go_build "$out" "$SRC_DIR/helm-$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
        "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" ;;
    pause)
      # The pod sandbox's process, from the C source shipped in the kubernetes
      # module; static, so the image needs nothing else.
      command -v gcc >/dev/null || die "gcc is not installed (Debian: apt-get install gcc libc6-dev)"
      src="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
      gcc -Os -static -DVERSION="v$PAUSE_VERSION-lumina" -o "$out.partial" "$src/build/pause/linux/pause.c" >>"$build_log" 2>&1 \
        || die "compiling pause.c failed (static linking needs libc6-dev); log: $build_log"
      strip "$out.partial" && mv "$out.partial" "$out"
      progress "  built pause ($(du -h "$out" | cut -f1))" ;;
  esac
  echo "$want" >"$out.version"
done
# One directory to put on PATH for helm and kubectl, whatever the version (a kubectl
# taken from the machine was linked there above).
if [[ -x "$K8S_BIN/kubectl" ]]; then ln -sfn "$K8S_BIN/kubectl" "$LUMINA_BIN/kubectl"; fi
progress "all $total binaries ready in $K8S_BIN (helm in $LUMINA_BIN)"
