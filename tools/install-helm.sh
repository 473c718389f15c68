#!/usr/bin/env bash
# Find Helm, or build it: a `helm` on PATH at a supported version (3.8 or newer; pyhelm3
# drives Helm 3 and 4) is used as it is, and nothing is built. Only where none exists is
# Helm compiled from the Go module proxy into ~/.cache/lumina/bin.
#
# There is no release download here, so Helm is built with `go install` at a
# pinned version; the version ldflags make `helm version` report it truthfully.
# Idempotent: when the cached binary already reports the pinned version (whoever
# built it, e.g. the local cluster's build script) nothing is rebuilt.
# LUMINA_HELM_BUILD=1 skips the PATH check (always use the pinned build).
#
# Progress goes to stderr; the LAST line on stdout is the directory to put on
# PATH, so callers can do: PATH="$(bash tools/install-helm.sh | tail -n1):$PATH"
set -euo pipefail

HELM_VERSION="${LUMINA_HELM_VERSION:-v3.22.0}"
LUMINA_CACHE="${LUMINA_CACHE:-$HOME/.cache/lumina}"
BIN_DIR="$LUMINA_CACHE/bin"
HELM="$BIN_DIR/helm"

say() { printf '[install-helm] %s\n' "$*" >&2; }
die() { printf '[install-helm] error: %s\n' "$*" >&2; exit 1; }

installed_version() {
  # A half-written or foreign binary must count as "not installed", not abort.
  "$HELM" version --template '{{.Version}}' 2>/dev/null || true
}

# supported VERSION: Helm 3.8+ or any later major.
supported() {
  [[ "$1" =~ ^v([0-9]+)\.([0-9]+)\. ]] || return 1
  ((BASH_REMATCH[1] > 3 || (BASH_REMATCH[1] == 3 && BASH_REMATCH[2] >= 8)))
}

if [[ "${LUMINA_HELM_BUILD:-0}" != 1 ]] && found="$(command -v helm 2>/dev/null)" \
  && [[ "$(readlink -f "$found")" != "$(readlink -f "$HELM" 2>/dev/null || echo "$HELM")" ]]; then
  version="$("$found" version --template '{{.Version}}' 2>/dev/null || true)"
  if supported "$version"; then
    say "using $found ($version) from PATH"
    dirname "$found"
    exit 0
  fi
  say "$found is ${version:-of an unknown version}; Helm 3.8 or newer is needed: building $HELM_VERSION"
fi

mkdir -p "$BIN_DIR"

if [[ -x "$HELM" && "$(installed_version)" == "$HELM_VERSION" ]]; then
  say "helm $HELM_VERSION already installed at $HELM"
  printf '%s\n' "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null \
  || die "cannot install helm: the go toolchain is not on PATH (install Go 1.26+ to build helm $HELM_VERSION)"

if [[ -x "$HELM" ]]; then
  say "found helm $(installed_version || echo '?') at $HELM, want $HELM_VERSION: rebuilding"
fi

say "building helm $HELM_VERSION from the Go module proxy (first time takes a few minutes)…"
# Build into a private directory and rename at the end, so a concurrent reader
# (or an interrupted build) never sees a half-written helm in BIN_DIR.
stage="$(mktemp -d "$BIN_DIR/.helm-build.XXXXXX")"
build_log="$stage/build.log"
trap 'rm -rf "$stage"' EXIT
start=$SECONDS
# The full compiler output goes to the log; the terminal gets a line per 50
# packages so a multi-minute build visibly moves.
# GOTOOLCHAIN=auto: a module needing a newer Go fetches it via the proxy.
# -p 2 by default because the CPU is shared with other long builds.
if ! GOBIN="$stage" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
  go install -p "${LUMINA_BUILD_JOBS:-2}" -v \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" 2>&1 \
  | tee "$build_log" \
  | awk '{ n++; if (n % 50 == 0) { printf "[install-helm]   …%d packages (%s)\n", n, $0; fflush() } }' >&2
then
  die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed; last compiler output:
$(tail -n 30 "$build_log")"
fi
mv -f "$stage/helm" "$HELM"

got="$(installed_version)"
[[ "$got" == "$HELM_VERSION" ]] || die "built helm reports version '$got', expected $HELM_VERSION"
say "installed helm $got at $HELM in $((SECONDS - start))s ($(du -h "$HELM" | cut -f1))"
printf '%s\n' "$BIN_DIR"
