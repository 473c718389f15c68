#!/usr/bin/env bash
# Test machines only: give the docker CLI its buildx plugin, so that the BuildKit route
# through `docker buildx build` is tested and benchmarked here. The product never needs
# this: without buildx it builds through `DOCKER_BUILDKIT=1 docker build` of a CLI older
# than 23.0, or on the engine's classic API (reconciler/building/buildkit.py).
#
# A CLI that already has the plugin is left alone. Otherwise buildx is compiled from the
# Go module proxy at a pinned version into ~/.cache/lumina/tools/buildx-<version>
# (outside any checkout; reused when present) and linked as a CLI plugin into
# $DOCKER_CONFIG/cli-plugins (default ~/.docker/cli-plugins). Idempotent.
set -euo pipefail

BUILDX_VERSION="${LUMINA_BUILDX_VERSION:-v0.39.1}"
LUMINA_CACHE="${LUMINA_CACHE:-$HOME/.cache/lumina}"
DIR="$LUMINA_CACHE/tools/buildx-$BUILDX_VERSION"
PLUGINS="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

say() { printf '[install-buildx] %s\n' "$*" >&2; }
die() { printf '[install-buildx] error: %s\n' "$*" >&2; exit 1; }

if docker buildx version >/dev/null 2>&1; then
  say "docker already has buildx: $(docker buildx version)"
  exit 0
fi

if [[ ! -x "$DIR/buildx" ]]; then
  command -v go >/dev/null || die "the go toolchain is not on PATH (needed to build buildx)"
  say "building buildx $BUILDX_VERSION from the Go module proxy into $DIR (a few minutes)"
  mkdir -p "$DIR.partial"
  # GOTOOLCHAIN=auto: a buildx release may need a newer Go than the one installed.
  GOBIN="$DIR.partial" GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" GOFLAGS=-buildvcs=false \
    go install -ldflags "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
    "github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION"
  rm -rf "$DIR"
  mv "$DIR.partial" "$DIR"
fi

mkdir -p "$PLUGINS"
ln -sfn "$DIR/buildx" "$PLUGINS/docker-buildx"
docker buildx version >/dev/null 2>&1 || die "docker does not load $PLUGINS/docker-buildx"
say "installed: $(docker buildx version)"
