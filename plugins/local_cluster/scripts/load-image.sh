#!/usr/bin/env bash
# Copy images from the Docker engine into the local cluster's containerd
# (namespace k8s.io), so pods can use them with imagePullPolicy IfNotPresent
# or Never: there is no registry the pods pull from.
#
# Through the cluster's own loopback registry when it answers (up.sh starts it): the
# engine pushes only the layers the registry lacks and containerd pulls only the ones
# it lacks, so an edit moves one small layer. Else (an older cluster, a registry that
# is down) the whole image goes through `docker save | ctr import`.
#
# Image garbage collection is off in this cluster (nothing could be pulled
# back), so this script bounds the growth itself: of each repository it loaded,
# it keeps the LUMINA_KEEP_IMAGES (default 20) most recently loaded tags, enough
# for rollbacks, and never removes a tag that a container still uses.
# Usage: load-image.sh IMAGE[:TAG]...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/common.sh
source "$here/common.sh"

[[ $# -ge 1 ]] || die "usage: load-image.sh IMAGE..."
command -v docker >/dev/null || die "docker CLI not found: images are built with Docker and then loaded"
pid_alive containerd || die "the cluster's containerd is not running: run up.sh first"
keep="${LUMINA_KEEP_IMAGES:-20}"
record="$CLUSTER_DIR/loaded-images"
# One load at a time (two environments' cycles may load at once): the record of loaded
# tags is read, pruned and rewritten here, and a lost line would let the next prune
# remove an image just loaded for another environment's pods.
exec 9>"$CLUSTER_DIR/.load-image.lock"
flock -w 600 9 || die "another load-image.sh has held $CLUSTER_DIR/.load-image.lock for 10 minutes"

# The name a pod's image field resolves to: Docker Hub's normalisation, as containerd's.
resolved_name() {
  local image="$1" first="${1%%/*}"
  if [[ "$image" != */* ]]; then echo "docker.io/library/$image"
  elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then echo "$image"
  else echo "docker.io/$image"; fi
}

# through_registry IMAGE: push to the node registry, pull into containerd, name it as
# a pod resolves it; prints that name.
through_registry() {
  local image="$1" staged="$NODE_REGISTRY/${1#*/}" ref output
  [[ "$image" == */* ]] || staged="$NODE_REGISTRY/$image"
  ref="$(resolved_name "$image")"
  docker tag "$image" "$staged" || return 1
  output="$(docker push "$staged" 2>&1)" || { docker rmi "$staged" >/dev/null 2>&1; echo "$output" >&2; return 1; }
  docker rmi "$staged" >/dev/null 2>&1 || true
  output="$("${CTR[@]}" -n k8s.io images pull --plain-http "$staged" 2>&1)" || { echo "$output" >&2; return 1; }
  "${CTR[@]}" -n k8s.io images tag --force "$staged" "$ref" >/dev/null || return 1
  "${CTR[@]}" -n k8s.io images rm "$staged" >/dev/null 2>&1 || true
  echo "$ref"
}

loaded=()
use_registry=0
node_registry_up && use_registry=1
for image in "$@"; do
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image is not in the Docker engine: build it first"
  start_ms=$(date +%s%3N)
  ref=""
  if ((use_registry)); then
    ref="$(through_registry "$image")" || { ref=""; progress "the node registry refused $image; loading it whole"; }
    how="through the node registry"
  fi
  if [[ -z "$ref" ]]; then
    output="$(docker save "$image" | "${CTR[@]}" -n k8s.io images import - 2>&1)" \
      || die "importing $image into containerd failed: $output"
    # containerd names the image as a pod's image field resolves; take that name
    # from its own report ("unpacking NAME (sha256:...)...done") rather than guess.
    ref="$(sed -n 's/^unpacking \([^ ]*\) (sha256:.*/\1/p' <<<"$output" | head -n1)"
    [[ -n "$ref" ]] || die "containerd did not report the name it stored $image under: $output"
    how="whole (docker save)"
  fi
  echo "$ref" >>"$record"
  loaded+=("$ref")
  elapsed_ms=$(( $(date +%s%3N) - start_ms ))
  progress "loaded $image into the cluster as $ref in $((elapsed_ms / 1000)).$(printf '%03d' $((elapsed_ms % 1000)))s, $how"
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
