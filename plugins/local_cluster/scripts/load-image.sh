#!/usr/bin/env bash
# Copy images from the Docker engine into the local cluster's containerd
# (namespace k8s.io), so pods can use them with imagePullPolicy IfNotPresent
# or Never: there is no registry to pull from.
#
# Image garbage collection is off in this cluster (nothing could be pulled
# back), so this script bounds the growth itself: of each repository it loaded,
# it keeps the LUMINA_KEEP_IMAGES (default 5) most recently loaded tags, enough
# for rollbacks, and never removes a tag that a container still uses.
# Usage: load-image.sh IMAGE[:TAG]...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

[[ $# -ge 1 ]] || die "usage: load-image.sh IMAGE..."
command -v docker >/dev/null || die "docker CLI not found: images are built with Docker and then loaded"
pid_alive containerd || die "the cluster's containerd is not running: run up.sh first"
keep="${LUMINA_KEEP_IMAGES:-5}"
record="$CLUSTER_DIR/loaded-images"

loaded=()
for image in "$@"; do
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not in the Docker engine: build it first"
  start=$SECONDS
  output="$(docker save "$image" | "${CTR[@]}" -n k8s.io images import - 2>&1)" \
    || die "importing $image into containerd failed: $output"
  # containerd names the image as a pod's image field resolves; take that name
  # from its own report ("unpacking NAME (sha256:...)...done") rather than guess.
  ref="$(sed -n 's/^unpacking \([^ ]*\) (sha256:.*/\1/p' <<<"$output" | head -n1)"
  [[ -n "$ref" ]] || die "containerd did not report the name it stored $image under: $output"
  echo "$ref" >>"$record"
  loaded+=("$ref")
  progress "loaded $image into the cluster as $ref in $((SECONDS - start))s"
done

# Prune older tags of the repositories just loaded.
in_use="$("${CTR[@]}" -n k8s.io containers ls 2>/dev/null | awk 'NR > 1 {print $2}' | sort -u)"
present="$("${CTR[@]}" -n k8s.io images ls -q)"
mapfile -t repos < <(for ref in "${loaded[@]}"; do echo "${ref%:*}"; done | sort -u)
for repo in "${repos[@]}"; do
  # Most recently loaded first, each tag once.
  mapfile -t tags < <(tac "$record" | awk -v r="$repo:" 'index($0, r) == 1 && !seen[$0]++')
  for old in "${tags[@]:$keep}"; do
    grep -qxF -- "$old" <<<"$in_use" && continue
    grep -qxF -- "$old" <<<"$present" || continue  # already gone: the record drops it below
    "${CTR[@]}" -n k8s.io images rm "$old" >/dev/null
    progress "removed old image $old (keeping the $keep newest of $repo)"
  done
done
# The record keeps one line per tag still in the cluster, in loading order
# (tags removed by other means, e.g. ctr, drop out here too).
tac "$record" | awk '!seen[$0]++' | tac \
  | grep -xF -f <("${CTR[@]}" -n k8s.io images ls -q) >"$record.new" || true
mv "$record.new" "$record"
