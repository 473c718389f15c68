"""Dynamic hostPath provisioner for the `standard` StorageClass.

A fresh PersistentVolumeClaim on `standard` gets a directory under the cluster
state folder and a hostPath PersistentVolume pre-bound to it; a released volume
whose reclaim policy is Delete has its directory and PV removed. It runs on the
host beside the kubelet (started by up.sh, ended by down.sh), polls the API
server with its own client certificate, whose RBAC role allows only this, and
needs nothing but the standard library.

The directory is mode 0777 because hostPath volumes ignore fsGroup: without it a
non-root pod (UID 10001) could not write to its own volume.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from typing import Any

PROVISIONER = "lumina.local/hostpath"
STORAGE_CLASS = "standard"


class Api:
    def __init__(self, server: str, ca: str, cert: str, key: str) -> None:
        if not server.startswith("https://"):
            raise SystemExit(f"--server must be an https:// URL, got {server!r}")
        self.server = server.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca)
        self.context.load_cert_chain(cert, key)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 (https only, checked above)
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read() or b"{}")
            return result


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def provision(api: Api, root: pathlib.Path, claim: dict[str, Any], reclaim: str) -> None:
    meta, spec = claim["metadata"], claim["spec"]
    name = f"pvc-{meta['uid']}"
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": STORAGE_CLASS,
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "hostPath": {"path": str(directory), "type": "Directory"},
        },
    }
    try:
        api.call("POST", "/api/v1/persistentvolumes", volume)
        log(f"provisioned {name} for {meta['namespace']}/{meta['name']} at {directory}")
    except urllib.error.HTTPError as error:
        if error.code != 409:  # 409: made on an earlier pass, the binder just has not caught up
            raise


def reclaim(api: Api, root: pathlib.Path, volume: dict[str, Any]) -> None:
    name = volume["metadata"]["name"]
    path = pathlib.Path(volume["spec"]["hostPath"]["path"])
    # Never delete anything outside our own volume folder, whatever a PV says.
    if path.parent == root and path.name == name:
        shutil.rmtree(path, ignore_errors=True)
    api.call("DELETE", f"/api/v1/persistentvolumes/{name}")
    log(f"deleted released volume {name}")


def sync(api: Api, root: pathlib.Path) -> None:
    classes = {
        c["metadata"]["name"]: c
        for c in api.call("GET", "/apis/storage.k8s.io/v1/storageclasses")["items"]
    }
    ours = {name for name, c in classes.items() if c.get("provisioner") == PROVISIONER}
    volumes = api.call("GET", "/api/v1/persistentvolumes")["items"]
    provisioned = {v["spec"].get("claimRef", {}).get("uid") for v in volumes}
    for claim in api.call("GET", "/api/v1/persistentvolumeclaims")["items"]:
        spec, meta = claim["spec"], claim["metadata"]
        if claim.get("status", {}).get("phase") != "Pending" or spec.get("volumeName"):
            continue
        class_name = spec.get("storageClassName")
        if class_name not in ours or meta["uid"] in provisioned or meta.get("deletionTimestamp"):
            continue
        provision(api, root, claim, classes[class_name].get("reclaimPolicy", "Delete"))
    for volume in volumes:
        annotations = volume["metadata"].get("annotations", {})
        if (
            annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
            and volume.get("status", {}).get("phase") in ("Released", "Failed")
            and volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        ):
            reclaim(api, root, volume)


def main() -> None:
    parser = argparse.ArgumentParser(description="hostPath provisioner for StorageClass standard")
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--root", required=True, type=pathlib.Path)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    api = Api(args.server, args.ca, args.cert, args.key)
    log(f"watching claims of provisioner {PROVISIONER}, volumes in {args.root}")
    while True:
        try:
            sync(api, args.root.resolve())
        except (urllib.error.URLError, OSError, KeyError) as error:
            # The API server restarting is normal during up/down: try again.
            print(f"sync failed, retrying: {error}", file=sys.stderr, flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
