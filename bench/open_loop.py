"""#13 The load group's open-loop figures: Poisson arrivals, 1 request/s per user.

Who calls it: :func:`bench.load.run`, after its closed-loop levels. What a user means by
"50 users": each sends the CRUD mix at 1 request/s on average (Poisson arrivals, see
:func:`bench.http_load.open_loop`), and latency counts from the moment a request
arrives. Two paths, 50 and 200 users each, ``repeat`` runs of ``seconds``, medians:

- **the backend's Service, from inside the cluster**: one short-lived pod of the
  backend's own image (it has Python) runs :mod:`bench.http_load` as a script (its text
  passed with ``python -c``: standard library only) against
  ``backend.<namespace>.svc.cluster.local``. The pod meets the restricted Pod Security
  profile, has a deadline, and is deleted afterwards, with the two NetworkPolicies that
  let it, and only it, reach the backend pods meanwhile (the chart denies everything
  else). The pod signs up its own accounts; its log carries one JSON line per run.
- **the frontend's NodePort from 127.0.0.1** (the browser's path), from this process
  over the session cookies :mod:`bench.load` signed in.
"""

from __future__ import annotations

import asyncio
import json
import math
import pathlib
import secrets
import time
from typing import Any

from bench import http_load, measuring, stack
from reconciler import settings
from reconciler.cluster import kube

LEVELS = (50, 200)
RATE = 1.0  # requests per second per user
#: (path, users) -> p95 target in seconds (issue 13)
TARGETS = {("backend", 50): 0.020, ("frontend", 50): 0.040, ("backend", 200): 0.100}
LABEL = "lumina-bench-load"
#: time the pod may take to sign its accounts up (argon2 on the backend's half core)
SIGN_UP_SECONDS = 300
#: a pod not started by then (no image on the node, unschedulable) is given up
PENDING_SECONDS = 120
BACKEND_PORT = 8000


def pod_objects(
    *,
    namespace: str,
    release: str,
    image: str,
    name: str,
    args: list[str],
    deadline: int,
) -> list[dict[str, Any]]:
    """The load-generator pod and the two NetworkPolicies that open the way to the
    backend pods for it alone (egress from it, ingress to them), in creation order."""
    own = {"app.kubernetes.io/name": LABEL, "app.kubernetes.io/instance": name}
    backend = {"app.kubernetes.io/name": "backend", "app.kubernetes.io/instance": release}
    port = [{"protocol": "TCP", "port": BACKEND_PORT}]
    meta = {"namespace": namespace, "labels": own}
    policies = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{name}-egress", **meta},
            "spec": {
                "podSelector": {"matchLabels": own},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"podSelector": {"matchLabels": backend}}], "ports": port}],
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"{name}-ingress", **meta},
            "spec": {
                "podSelector": {"matchLabels": backend},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": own}}], "ports": port}],
            },
        },
    ]
    restricted = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **meta},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {**restricted, "runAsUser": 10001, "runAsGroup": 10001},
            "containers": [
                {
                    "name": "load",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["/opt/venv/bin/python", "-c", _script(), *args],
                    "env": [
                        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"},
                    ],
                    # A whole core at most: the generator must not be the bottleneck,
                    # and its own CPU per request is in its figures.
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"cpu": "1", "memory": "256Mi"},
                    },
                    "securityContext": {
                        **restricted,
                        "allowPrivilegeEscalation": False,
                        "privileged": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    return [*policies, pod]


def _script() -> str:
    return pathlib.Path(http_load.__file__).read_text(encoding="utf-8")


def parse_results(log: str) -> list[dict[str, Any]]:
    """The run lines of the script's output, in order."""
    return [
        json.loads(line.removeprefix(http_load.RESULT_MARK))
        for line in log.splitlines()
        if line.startswith(http_load.RESULT_MARK)
    ]


def in_cluster(
    ctx: measuring.Context, connection: kube.Kube, config: settings.Settings, repeat: int
) -> list[dict[str, Any]]:
    """Run the load-generator pod to its end; its runs (``users``, ``p95``…)."""
    namespace = config.namespace
    images = stack.running_image(connection, namespace, "backend")["ready_images"]
    if not images:
        raise RuntimeError("no Ready backend pod: nothing to take the image from")
    # One generator at a time: a pod left by an interrupted run goes first.
    for kind, version in (("Pod", "v1"), ("NetworkPolicy", "networking.k8s.io/v1")):
        for leftover in connection.list(
            version, kind, namespace, label_selector=f"app.kubernetes.io/name={LABEL}"
        ):
            connection.delete(version, kind, namespace, leftover["metadata"]["name"])
    name = f"{LABEL}-{secrets.token_hex(3)}"
    run_seconds = len(LEVELS) * repeat * (ctx.load_seconds + 2 * http_load.REQUEST_TIMEOUT)
    deadline = int(SIGN_UP_SECONDS + run_seconds + 60)
    args = [
        "--host",
        f"backend.{namespace}.svc.cluster.local",
        "--port",
        str(BACKEND_PORT),
        "--users",
        ",".join(str(level) for level in LEVELS),
        "--rate",
        str(RATE),
        "--seconds",
        str(ctx.load_seconds),
        "--repeat",
        str(repeat),
    ]
    objects = pod_objects(
        namespace=namespace,
        release=config.release,
        image=images[0],
        name=name,
        args=args,
        deadline=deadline,
    )
    try:
        for body in objects:
            connection.apply(body)
        ctx.say(f"load: pod {name} runs the open loop (deadline {deadline} s)")
        phase = _wait(connection, namespace, name, deadline + 60)
        log = connection.pod_log(namespace, name, "load", previous=False, lines=None)
    finally:
        for body in reversed(objects):
            kind, version = str(body["kind"]), str(body["apiVersion"])
            connection.delete(version, kind, namespace, str(body["metadata"]["name"]))
    runs = parse_results(log)
    if phase != "Succeeded" or not runs:
        tail = "\n".join(log.strip().splitlines()[-5:])
        raise RuntimeError(f"load-generator pod ended {phase} with {len(runs)} runs: {tail}")
    return runs


def _wait(connection: kube.Kube, namespace: str, name: str, seconds: float) -> str:
    """The pod's final phase; or, when it never started within ``PENDING_SECONDS`` or
    ``seconds`` ran out, the last phase seen with what its container waits for."""
    phase, began = "Pending", time.monotonic()
    status: dict[str, Any] = {}
    while time.monotonic() < began + seconds:
        pod = connection.get("v1", "Pod", namespace, name) or {}
        status = pod.get("status") or {}
        phase = str(status.get("phase") or "Pending")
        if phase in ("Succeeded", "Failed"):
            return phase
        if phase == "Pending" and time.monotonic() > began + PENDING_SECONDS:
            break
        time.sleep(2)
    waiting = [
        str(container["state"]["waiting"].get("reason"))
        for container in status.get("containerStatuses") or []
        if (container.get("state") or {}).get("waiting")
    ]
    return f"{phase} (waiting: {', '.join(waiting)})" if waiting else phase


def through_frontend(
    ctx: measuring.Context, sessions: list[dict[str, Any]], repeat: int
) -> list[dict[str, Any]]:
    """The same open loop through the frontend's NodePort, from this process."""
    auths = [
        "cookie: " + "; ".join(f"{key}={value}" for key, value in session["cookies"].items())
        for session in sessions
    ]
    port = int(stack.FRONTEND_URL.rsplit(":", 1)[1])
    runs = []
    for repetition in range(repeat):
        for level in LEVELS:
            ctx.say(f"load: open loop, frontend (NodePort), {level} users, run {repetition + 1}")
            tally = asyncio.run(
                http_load.open_loop(port, auths[:level], ctx.load_seconds, rate=RATE)
            )
            runs.append({"users": level, "repetition": repetition, **tally.figures()})
    return runs


def rows(path: str, where: str, runs: list[dict[str, Any]]) -> list[measuring.Row]:
    """One row per level: medians over the runs, the errors of all of them."""
    found = []
    for level in LEVELS:
        these = [run for run in runs if run["users"] == level]
        if not these:
            continue

        def middle(key: str, these: list[dict[str, Any]] = these) -> float:
            return measuring.median([float(run[key]) for run in these])

        errors = sum(int(run["errors"]) for run in these)
        p95 = middle("p95")
        cuts = "/".join(f"{middle(key) * 1000:.1f}" for key in ("p50", "p95", "p99"))
        figure = (
            f"p50/p95/p99 {cuts} ms, "
            f"{middle('achieved_rate'):.0f} of {level * RATE:.0f} req/s, {errors} errors "
            f"(n={len(these)}); generator {middle('client_cpu_ms_per_request'):.2f} ms "
            "CPU per request"
        )
        target = TARGETS.get((path, level))
        aim = f"p95 < {target * 1000:.0f} ms, 0 errors" if target else "0 errors"
        met = errors == 0 and (target is None or (not math.isnan(p95) and p95 < target))
        found.append(
            measuring.Row(f"open loop, {where}, {level} users x {RATE:g} req/s", figure, aim, met)
        )
    return found
