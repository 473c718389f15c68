#!/usr/bin/env bash
# Provide the base images the service Dockerfiles name (python:3.13-slim,
# node:20-slim) on a machine that cannot pull them.
#
# For each image:
#   1. present and built by this script with the same inputs  -> nothing to do
#      present but not ours (a real, pulled image)             -> kept as is
#   2. absent -> try `docker pull` (real images win where a registry answers)
#   3. else make a stand-in: debootstrap a Debian suite whose Python/Node match
#      the tag, add what the official image provides that Dockerfiles rely on,
#      strip docs/caches, and `docker import` it as ONE layer under the same name.
#
# Stand-ins carry the label org.lumina.base-image.digest = hash of the recipe
# (the text of the functions that shape the root filesystem, without comments)
# and every input; a rerun with the same digest is a no-op, and edits that do
# not change the content (comments, messages, orchestration) rebuild nothing,
# so images built on the stand-ins keep their layer cache.  The pristine
# debootstrap output is cached as a tarball under
# ~/.cache/lumina/base-images/ (and the .debs it used), so changing only the
# customisation below does not download anything again.
#
# Usage: tools/base-images/build.sh [IMAGE...]   (default: all)
# Environment:
#   LUMINA_BASE_IMAGES_PULL=0   never try `docker pull` (saves 20 s per image
#                               on machines without a registry)
#   LUMINA_DEBIAN_MIRROR        Debian mirror URL (default: the first Debian
#                               mirror in this machine's apt sources)
#   LUMINA_CACHE_DIR            cache root (default ~/.cache/lumina)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SUITE=trixie # Debian 13: python3.13 and nodejs 20.x, matching the tags below
NPM_VERSION=10.9.9
CACHE=${LUMINA_CACHE_DIR:-$HOME/.cache/lumina}/base-images
LABEL=org.lumina.base-image.digest

# image name -> extra Debian packages.  python3-venv brings python3-pip-whl,
# from which pip itself is installed into /usr/local like the official image.
declare -A PACKAGES=(
    [python:3.13-slim]="python3,python3-venv,ca-certificates,adduser"
    [node:20-slim]="nodejs,ca-certificates,adduser"
)
ALL_IMAGES=(python:3.13-slim node:20-slim)

say() { echo "base-images: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now() { date +%s; }

debian_mirror() {
    if [[ -n ${LUMINA_DEBIAN_MIRROR:-} ]]; then echo "$LUMINA_DEBIAN_MIRROR"; return; fi
    local uri
    # one-line sources (`deb URI suite ...`) first, then deb822 `URIs:` fields;
    # the security archive is not a full mirror.
    uri=$( { grep -hsE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
                 awk '{for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}'
             grep -hsiE '^\s*URIs:' /etc/apt/sources.list.d/*.sources |
                 awk '{for (i=2;i<=NF;i++) print $i}'
           } | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true)
    [[ -n $uri ]] || die "no Debian mirror found in /etc/apt/sources.list{,.d}; set LUMINA_DEBIAN_MIRROR"
    echo "${uri%/}"
}

digest_of() { # stdin -> short sha256
    sha256sum | cut -c1-16
}

install_debootstrap() {
    local apt=(apt-get -o DPkg::Lock::Timeout=600)
    [[ -r /etc/debian_version ]] || die "debootstrap is missing; install it with your package manager"
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    # Package lists may be missing on a fresh machine; update only then.
    "${apt[@]}" install -y --no-install-recommends debootstrap >&2 ||
        { "${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends debootstrap >&2; } ||
        die "could not install debootstrap: apt-get install -y debootstrap"
}

# --- the pristine debootstrap tarball, cached by suite+mirror+packages ------
debootstrap_tarball() { # image -> path of cached tarball
    local image=$1 mirror key tarball tmp
    mirror=$(debian_mirror)
    key=$(printf '%s\n' "$SUITE" "$mirror" "${PACKAGES[$image]}" minbase | digest_of)
    tarball=$CACHE/debootstrap-$SUITE-${image%%:*}-$key.tar
    if [[ -s $tarball ]]; then
        say "$image: cached debootstrap tarball $(basename "$tarball")"
    else
        command -v debootstrap >/dev/null || install_debootstrap
        tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        WORK_DIRS+=("$tmp")
        say "$image: debootstrap --variant=minbase $SUITE (+${PACKAGES[$image]}) from $mirror ..."
        local t0; t0=$(now)
        if ! debootstrap --variant=minbase --cache-dir="$CACHE/debs" \
                --include="${PACKAGES[$image]}" "$SUITE" "$tmp" "$mirror" \
                >"$CACHE/debootstrap.log" 2>&1; then
            tail -n 20 "$CACHE/debootstrap.log" >&2
            rm -rf "$tmp"
            die "debootstrap $SUITE failed (full log: $CACHE/debootstrap.log)"
        fi
        tar --numeric-owner -C "$tmp" -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        rm -rf "$tmp"
        say "$image: debootstrap done in $(( $(now) - t0 ))s"
    fi
    echo "$tarball"
}

# --- customisation shared by both images ------------------------------------
host_cas() { # locally added CA certificates this host trusts, sorted
    [[ ${LUMINA_BASE_IMAGES_HOST_CAS:-1} != 0 ]] || return 0
    find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null | LC_ALL=C sort
}

trust_host_cas() { # rootfs
    # Where outbound HTTPS goes through a TLS-intercepting proxy, the host
    # trusts its CA locally; without the same CA, `pip install` and
    # `npm install` inside docker builds fail certificate checks.  Images here
    # are local only, so they trust what this host trusts.
    local r=$1 ca
    local -a cas
    mapfile -t cas < <(host_cas)
    [[ ${#cas[@]} -gt 0 ]] || return 0
    mkdir -p "$r/usr/local/share/ca-certificates/host"
    for ca in "${cas[@]}"; do install -m 0644 "$ca" "$r/usr/local/share/ca-certificates/host/"; done
    # It warns about the bundle file it finds in /etc/ssl/certs on every run; only failures matter.
    local out
    out=$(chroot "$r" update-ca-certificates 2>&1) || die "update-ca-certificates failed: $out"
    say "trusting ${#cas[@]} locally added host CA(s) (LUMINA_BASE_IMAGES_HOST_CAS=0 to skip)"
}

slim_down() { # rootfs
    local r=$1
    # Keep later `apt-get install`s in derived images slim, as Debian's own
    # container images do.
    mkdir -p "$r/etc/dpkg/dpkg.cfg.d" "$r/etc/apt/apt.conf.d"
    cat >"$r/etc/dpkg/dpkg.cfg.d/lumina-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    cat >"$r/etc/apt/apt.conf.d/lumina-slim" <<'EOF'
APT::Install-Recommends "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$r"/usr/share/{man,info,lintian}/* "$r"/usr/share/locale/*
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old
    find "$r/var/log" -type f -delete
    # docker provides /dev at run time; device nodes made by debootstrap do not belong in a layer.
    find "$r/dev" -mindepth 1 -delete
    # Host identity must not leak into the image; docker supplies these at run time.
    : >"$r/etc/resolv.conf"
    : >"$r/etc/hostname"
    : >"$r/etc/machine-id"
}

customise_python() { # rootfs version -> docker import --change args on stdout
    local r=$1 ver=$2 full whl whls
    full=$(chroot "$r" python3 -c 'import platform; print(platform.python_version())')
    # The official image lets root `pip install` system-wide.
    rm -f "$r/usr/lib/python$ver/EXTERNALLY-MANAGED"
    # Official layout: packages in /usr/local/lib/pythonX.Y/site-packages.
    # Debian's python puts /usr/local/lib/pythonX.Y/dist-packages on sys.path
    # and pip installs there, so make that name point at site-packages:
    # Dockerfiles that COPY site-packages between stages then just work.
    mkdir -p "$r/usr/local/lib/python$ver/site-packages"
    rmdir "$r/usr/local/lib/python$ver/dist-packages" 2>/dev/null || true
    ln -sfn site-packages "$r/usr/local/lib/python$ver/dist-packages"
    for b in python python3 "python$ver"; do ln -sf "/usr/bin/python$ver" "$r/usr/local/bin/$b"; done
    ln -sf /usr/bin/pydoc3 "$r/usr/local/bin/pydoc"
    # pip itself, from the wheel Debian ships for venvs, installed like the
    # official image's pip (/usr/local/bin/pip*, upgradable with pip).
    whls=("$r"/usr/share/python-wheels/pip-*.whl)
    [[ -f ${whls[0]} ]] || die "python3-pip-whl is missing from the rootfs"
    whl=${whls[0]#"$r"/}
    chroot "$r" env PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "python$ver" "/$whl/pip" install --quiet --no-index --no-cache-dir "/$whl" >&2
    # Drop bytecode of everything but the stdlib, like the official image does for pip.
    find "$r/usr/local/lib/python$ver" -name __pycache__ -type d -prune -exec rm -rf {} +
    printf '%s\n' \
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "ENV LANG=C.UTF-8" \
        "ENV PYTHON_VERSION=$full" \
        'CMD ["python3"]'
}

customise_node() { # rootfs major -> docker import --change args on stdout
    local r=$1 full npm_tgz=$CACHE/npm-$NPM_VERSION.tgz
    full=$(chroot "$r" node -p 'process.versions.node')
    # Debian's npm package is old and pulls ~400 packages; use the real npm.
    if [[ ! -s $npm_tgz ]]; then
        command -v npm >/dev/null || die "npm is needed on the host to fetch npm@$NPM_VERSION"
        say "node:20-slim: fetching npm@$NPM_VERSION"
        (cd "$CACHE" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
        [[ -s $npm_tgz ]] || die "npm pack npm@$NPM_VERSION did not produce $npm_tgz"
    fi
    mkdir -p "$r/usr/local/lib/node_modules" "$r/usr/local/bin"
    rm -rf "$r/usr/local/lib/node_modules/npm" "$r/usr/local/lib/node_modules/package"
    tar --no-same-owner -xzf "$npm_tgz" -C "$r/usr/local/lib/node_modules"
    mv "$r/usr/local/lib/node_modules/package" "$r/usr/local/lib/node_modules/npm"
    rm -rf "$r/usr/local/lib/node_modules/npm/docs" "$r/usr/local/lib/node_modules/npm/man"
    # npm derives its global prefix from node's real path (/usr); the official
    # image's global installs go to /usr/local.
    echo "prefix=/usr/local" >"$r/usr/local/lib/node_modules/npm/npmrc"
    ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
    ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"
    ln -sf /usr/bin/node "$r/usr/local/bin/node"
    install -m 0755 "$HERE/node/docker-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
    # The official image's unprivileged user; Dockerfiles use `USER node`.
    chroot "$r" groupadd --gid 1000 node
    chroot "$r" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
    printf '%s\n' \
        "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "ENV NODE_VERSION=$full" \
        'ENTRYPOINT ["docker-entrypoint.sh"]' \
        'CMD ["node"]'
}

# --- one image ----------------------------------------------------------------
ensure_image() {
    local image=$1 kind=${1%%:*} want tag ver digest have t0
    tag=${image#*:}
    want=${tag%%-*} # python:3.13-slim -> 3.13, node:20-slim -> 20
    digest=$( { declare -f customise_python customise_node trust_host_cas slim_down
                cat "$HERE/node/docker-entrypoint.sh"
                host_cas | while IFS= read -r ca; do cat "$ca"; done
                printf '%s\n' "$image" "$SUITE" "$(debian_mirror)" "${PACKAGES[$image]}" "$NPM_VERSION"
              } | digest_of)

    if docker image inspect "$image" >/dev/null 2>&1; then
        have=$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$image" 2>/dev/null || true)
        if [[ -z $have || $have == "<no value>" ]]; then
            say "$image: present and not a stand-in (a real image); keeping it"
            return
        elif [[ $have == "$digest" ]]; then
            say "$image: up to date (stand-in $digest)"
            return
        fi
        say "$image: stand-in $have is outdated; rebuilding as $digest"
    elif [[ ${LUMINA_BASE_IMAGES_PULL:-1} != 0 ]]; then
        say "$image: absent; trying docker pull (20 s limit)"
        if timeout 20 docker pull -q "$image" >/dev/null 2>&1; then
            say "$image: pulled the real image"
            return
        fi
        say "$image: cannot pull; making a local stand-in"
    fi

    [[ $(id -u) -eq 0 ]] || die "making $image needs root (debootstrap, chroot); run: sudo $0 $image"
    t0=$(now)
    local tarball root changes
    tarball=$(debootstrap_tarball "$image")
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    WORK_DIRS+=("$root")
    tar --numeric-owner -C "$root" -xf "$tarball"

    say "$image: customising"
    case $kind in
        python)
            ver=$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
            [[ $ver == "$want" ]] || die "Debian $SUITE ships Python $ver, not $want: change SUITE in $0"
            changes=$(customise_python "$root" "$ver") ;;
        node)
            ver=$(chroot "$root" node -p 'process.versions.node.split(".")[0]')
            [[ $ver == "$want" ]] || die "Debian $SUITE ships Node $ver, not $want: change SUITE in $0"
            changes=$(customise_node "$root" "$ver") ;;
        *) die "no recipe for $image" ;;
    esac
    trust_host_cas "$root"
    slim_down "$root"

    local args=(--change "LABEL $LABEL=$digest"
                --change "LABEL org.lumina.base-image.source=debootstrap-$SUITE"
                --message "lumina stand-in for $image (debootstrap $SUITE)")
    while IFS= read -r c; do args+=(--change "$c"); done <<<"$changes"
    say "$image: docker import"
    local old_id
    old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    tar --numeric-owner -C "$root" -c . | docker import "${args[@]}" - "$image" >/dev/null
    # The replaced stand-in would linger as <none>; images built on it keep it alive.
    [[ -z $old_id ]] || docker rmi "$old_id" >/dev/null 2>&1 || true
    say "$image: built in $(( $(now) - t0 ))s, $(docker image inspect -f '{{.Size}}' "$image" |
        awk '{printf "%.0f MB", $1/1e6}')"
}

# --- main -----------------------------------------------------------------------
timeout 20 docker info >/dev/null 2>&1 ||
    die "no Docker engine answers; run tools/ensure-docker.sh first"
mkdir -p "$CACHE/debs"
WORK_DIRS=()
cleanup() { local d; for d in "${WORK_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
# Several people may ask for the images at once; one builder at a time.
exec 9>"$CACHE/.lock"
flock 9

images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=("${ALL_IMAGES[@]}")
for image in "${images[@]}"; do
    [[ -n ${PACKAGES[$image]:-} ]] || die "unknown image $image (known: ${ALL_IMAGES[*]})"
    ensure_image "$image"
done
