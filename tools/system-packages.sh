#!/usr/bin/env bash
# Installs the system packages bootstrap and the test sessions need on a fresh Debian machine of
# this project's kind. Idempotent: packages already present are not fetched again.
set -euo pipefail

# chromium: the frontend's browser test and the status page's (tests/test_status_page.py); debootstrap: local base images; gcc and
# libc6-dev: the local cluster's pause image; iproute2: `ss` in tests;
# docker-registry: the real registry the image-delivery tests push to (its systemd
# service is never used: tests start the binary on a free loopback port).
packages=(git chromium debootstrap gcc libc6-dev iproute2 ca-certificates docker-registry)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
