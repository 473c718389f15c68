#!/usr/bin/env bash
# Build Skaffold from the Go module proxy into $LUMINA_CACHE/bin (default
# ~/.cache/lumina/bin), for the second baseline of `nox -s bench` (group inner_loop).
#
# Why not `go install github.com/GoogleContainerTools/skaffold/v2/cmd/skaffold@latest`:
# the proxy refuses the module's version list (403), which both "@latest" and
# go install's deprecation check need, and go install ignores the replace directives
# Skaffold's go.mod relies on. So: download one pinned version, build inside it.
# Takes ~10 minutes with -p 1 on a busy 2-core machine.
set -euo pipefail
version="${SKAFFOLD_VERSION:-v2.16.1}"
module="github.com/GoogleContainerTools/skaffold/v2"
bin_dir="${LUMINA_CACHE:-$HOME/.cache/lumina}/bin"
command -v go >/dev/null || { echo "go is not installed: needed to build skaffold" >&2; exit 1; }
mkdir -p "$bin_dir"
dir="$(GOTOOLCHAIN=auto go mod download -json "$module@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -n "$dir" ]] || { echo "could not download $module@$version" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
cd "$work"
GOTOOLCHAIN=auto GOFLAGS="-mod=mod" go build -p "${GO_BUILD_JOBS:-1}" \
  -ldflags "-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$version" \
  -o "$bin_dir/skaffold" ./cmd/skaffold
echo "$bin_dir/skaffold"
