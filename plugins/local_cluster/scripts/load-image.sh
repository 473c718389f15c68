#!/usr/bin/env bash
# Copy images from the Docker engine into the local cluster's containerd
# (namespace k8s.io), so pods can use them with imagePullPolicy IfNotPresent
# or Never: there is no registry to pull from.
# Usage: load-image.sh IMAGE[:TAG]...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

[[ $# -ge 1 ]] || die "usage: load-image.sh IMAGE..."
command -v docker >/dev/null || die "docker CLI not found: images are built with Docker and then loaded"
pid_alive containerd || die "the cluster's containerd is not running: run up.sh first"
for image in "$@"; do
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not in the Docker engine: build it first"
  start=$SECONDS
  # --no-unpack would defer the snapshot to the first pod start; unpacking now
  # makes that start fast and reports a broken image here.
  docker save "$image" | "${CTR[@]}" -n k8s.io images import - >/dev/null \
    || die "importing $image into containerd failed"
  progress "loaded $image into the cluster in $((SECONDS - start))s"
done
