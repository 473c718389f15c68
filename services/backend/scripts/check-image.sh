#!/usr/bin/env bash
# Build the backend image with Docker's classic builder (as the reconciler's docker SDK
# does) and check it the way the cluster will run it: read-only root, tmpfs /tmp,
# UID/GID 10001, no capabilities, a volume at /data. Prints size and timings.
#
# Usage: services/backend/scripts/check-image.sh [image-tag]   (needs docker and curl)
#        COLD=1 ... builds without Docker's layer cache, to time a cold build.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${1:-lumina/backend:check}"
max_mb=200
name="lumina-backend-check-$$"
volume="$name-data"
port="${PORT:-$(( 20000 + $$ % 20000 ))}"
secret="check-image-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
rootdir=""

for tool in docker curl; do
  command -v "$tool" >/dev/null || { echo "check-image: '$tool' is not installed" >&2; exit 2; }
done

cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker network rm "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
  [[ -n "$rootdir" ]] && rm -rf "$rootdir"
  rm -f "/tmp/$name.build.log"
}
trap cleanup EXIT

fail() { echo "check-image: FAIL: $*" >&2; docker logs "$name" 2>&1 | tail -20 >&2 || true; exit 1; }

run() {
  docker run -d --name "$name" --network "$name" --read-only --tmpfs /tmp --user 10001:10001 \
    --cap-drop ALL --security-opt no-new-privileges \
    -e JWT_SECRET_KEY="$secret" -p "127.0.0.1:$port:8000" "$@" "$image" >/dev/null
}

wait_ready() {
  local start=$SECONDS
  until curl -sf "http://127.0.0.1:$port/api/ready" >/dev/null; do
    (( SECONDS - start < 60 )) || fail "not ready within 60 s"
    sleep 0.2
  done
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01d s' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }

post() { curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  -X POST "http://127.0.0.1:$port$1" -d "$2"; }

echo "== build ($image)"
t0=$(now_ms)
# Host network for the build's RUN steps only: they need PyPI, not a bridge.
DOCKER_BUILDKIT=0 docker build --network host ${COLD:+--no-cache} -q -t "$image" "$here" >/dev/null 2>"/tmp/$name.build.log" \
  || { cat "/tmp/$name.build.log" >&2; fail "docker build"; }
echo "build${COLD:+ (cold)}: $(since "$t0")"

size=$(docker image inspect -f '{{.Size}}' "$image")
size_mb=$(( size / 1000 / 1000 ))
echo "size: ${size_mb} MB (limit ${max_mb} MB)"
(( size_mb < max_mb )) || fail "image is ${size_mb} MB"
user=$(docker image inspect -f '{{.Config.User}}' "$image")
[[ "$user" == "10001:10001" ]] || fail "image USER is '$user', expected 10001:10001"
compilers=$(docker run --rm --network none --user 10001:10001 --entrypoint sh "$image" -c \
  'for c in gcc cc c++ clang make; do command -v $c; done; true')
[[ -z "$compilers" ]] || fail "compilers in the runtime image: $compilers"

echo "== run read-only as 10001 with a volume at /data"
# A network of its own: independent of docker0, which a local cluster may take over.
docker network create "$name" >/dev/null
docker volume create "$volume" >/dev/null
t0=$(now_ms)
run -v "$volume:/data"
wait_ready
echo "ready after: $(since "$t0")"
curl -sf "http://127.0.0.1:$port/api/health"; echo
curl -sf "http://127.0.0.1:$port/api/ready"; echo
body='{"email":"check@example.com","password":"check-image-password"}'
[[ $(post /api/auth/register "$body") == 201 ]] || fail "register"

echo "== SIGTERM, then start again on the same volume"
t0=$(now_ms)
docker stop "$name" >/dev/null
echo "stopped in: $(since "$t0")"
docker logs "$name" 2>&1 | grep -q "database closed" || fail "no clean shutdown in the log"
docker rm "$name" >/dev/null
run -v "$volume:/data"
wait_ready
[[ $(post /api/auth/login "$body") == 200 ]] || fail "login after restart: data lost"
echo "data survived the restart"
docker rm -f "$name" >/dev/null

echo "== a root-owned volume is refused with a clear message"
rootdir=$(mktemp -d)
chmod 0755 "$rootdir"
run -v "$rootdir:/data"
docker wait "$name" >/dev/null
docker logs "$name" 2>&1 | grep "not writable by uid 10001" || fail "no clear message for an unwritable /data"
echo "check-image: OK"
