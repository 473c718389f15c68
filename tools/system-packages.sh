#!/usr/bin/env bash
# Installs the Debian packages this project's own tests and CI need -- never the product:
# `nox -s bootstrap` does not run this (the local from-source cluster installs what it
# runs itself, in plugins/local_cluster/scripts/up.sh). Idempotent: packages already
# present are not fetched again.
#
# Usage: tools/system-packages.sh [GROUP...]   (default: every group; .ci/run uses that)
#   tests     git, iproute2 (`ss` in tests), docker-registry (the real registry the
#             image-delivery tests push to; its systemd service is never used: tests
#             start the binary on a free loopback port), chromium (the daemon's
#             status page, tests/test_status_page.py)
#   frontend  chromium (the frontend's browser test)
#   e2e       the tests group, plus debootstrap (tests/tools builds local base images)
#             and gcc + libc6-dev (the local cluster's pause image)
set -euo pipefail

declare -A GROUPS_OF=(
  [tests]="git iproute2 ca-certificates docker-registry chromium"
  [frontend]="chromium ca-certificates"
  [e2e]="git iproute2 ca-certificates docker-registry debootstrap gcc libc6-dev"
)
groups=("$@")
((${#groups[@]})) || groups=(tests frontend e2e)
packages=()
for group in "${groups[@]}"; do
  [[ -n "${GROUPS_OF[$group]:-}" ]] || { echo "unknown group '$group' (one of: ${!GROUPS_OF[*]})" >&2; exit 2; }
  read -r -a more <<<"${GROUPS_OF[$group]}"
  packages+=("${more[@]}")
done
if ! command -v dpkg-query >/dev/null; then
  echo "not a Debian system: make sure the ${groups[*]} tests have: $(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 0
fi
missing=()
for package in $(printf '%s\n' "${packages[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "the ${groups[*]} tests need: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing (for the ${groups[*]} tests): ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
