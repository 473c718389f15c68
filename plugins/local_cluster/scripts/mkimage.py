"""Assemble a single-layer container image as a `docker save` archive.

The cluster's own images (pause, CoreDNS, a busybox for tests) cannot be pulled
here and need nothing but a static binary, so they are written directly instead
of depending on a running Docker engine. `ctr images import` and `docker load`
both read the result. Run by up.sh:

    mkimage.py OUT.tar NAME:TAG --add SRC:DEST[:MODE] ... --entrypoint /bin/x --user 65532
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pathlib
import tarfile

# Fixed timestamps make the same inputs give the same image digest.
EPOCH = 0


def _dir_entries(dest: str, seen: set[str]) -> list[tarfile.TarInfo]:
    entries = []
    parts = pathlib.PurePosixPath(dest).parts[:-1]
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[1 : depth + 1]) if parts[0] == "/" else "/".join(parts[:depth])
        if not path or path in seen:
            continue
        seen.add(path)
        info = tarfile.TarInfo(path)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = EPOCH
        entries.append(info)
    return entries


def build_layer(adds: list[str], symlinks: list[str]) -> bytes:
    buffer = io.BytesIO()
    seen: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for spec in adds:
            src, dest, *mode = spec.split(":")
            for entry in _dir_entries(dest, seen):
                tar.addfile(entry)
            data = pathlib.Path(src).read_bytes()
            info = tarfile.TarInfo(dest.lstrip("/"))
            seen.add(info.name)
            info.size = len(data)
            info.mode = int(mode[0], 8) if mode else 0o755
            info.mtime = EPOCH
            tar.addfile(info, io.BytesIO(data))
        for spec in symlinks:
            link, target = spec.split(":")
            # `busybox --list` names busybox itself: never replace a file by a link.
            if link.lstrip("/") in seen:
                continue
            for entry in _dir_entries(link, seen):
                tar.addfile(entry)
            info = tarfile.TarInfo(link.lstrip("/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            info.mtime = EPOCH
            tar.addfile(info)
        # Programs that write temporary files (and non-root users) need /tmp.
        tmp = tarfile.TarInfo("tmp")
        tmp.type = tarfile.DIRTYPE
        tmp.mode = 0o1777
        tmp.mtime = EPOCH
        tar.addfile(tmp)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("tag")
    parser.add_argument("--add", action="append", default=[], help="SRC:DEST[:OCTAL_MODE]")
    parser.add_argument("--symlink", action="append", default=[], help="LINK:TARGET")
    parser.add_argument("--entrypoint", action="append", default=[])
    parser.add_argument("--cmd", action="append", default=[])
    parser.add_argument("--user", default="")
    parser.add_argument("--workdir", default="/")
    args = parser.parse_args()

    layer = build_layer(args.add, args.symlink)
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": args.entrypoint or None,
            "Cmd": args.cmd or None,
            "User": args.user,
            "WorkingDir": args.workdir,
            "Env": ["PATH=/bin:/usr/bin:/usr/local/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "lumina mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = [
        {"Config": config_name, "RepoTags": [args.tag], "Layers": [f"{layer_digest}/layer.tar"]}
    ]

    tmp = args.out.with_suffix(".partial")
    with tarfile.open(tmp, mode="w") as tar:
        for name, data in (
            (f"{layer_digest}/layer.tar", layer),
            (config_name, config_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = EPOCH
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
