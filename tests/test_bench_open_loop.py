"""The bench's open loop without a cluster: the load-generator pod's spec (restricted
Pod Security, bounded, its own NetworkPolicies), its script run as the pod runs it
(``python -c``, standard library only), and the client against a real local server."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import rich.console

from bench import http_load, measuring, open_loop
from reconciler import settings


def _objects() -> list[dict[str, Any]]:
    return open_loop.pod_objects(
        namespace="lumina",
        release="lumina",
        image="lumina/backend:abc",
        name="lumina-bench-load-x",
        args=["--users", "50"],
        deadline=600,
    )


def test_the_pod_meets_the_restricted_profile_and_is_bounded() -> None:
    pod = _objects()[-1]
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "limits" in container["resources"]
    assert container["command"][:2] == ["/opt/venv/bin/python", "-c"]
    assert container["command"][-2:] == ["--users", "50"]


def test_the_policies_open_the_backend_to_this_pod_only() -> None:
    egress, ingress, pod = _objects()
    own = pod["metadata"]["labels"]
    assert egress["spec"]["podSelector"] == {"matchLabels": own}
    assert egress["spec"]["policyTypes"] == ["Egress"]
    (rule,) = ingress["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": own}}]
    backend = ingress["spec"]["podSelector"]["matchLabels"]
    assert backend["app.kubernetes.io/name"] == "backend"
    names = {body["metadata"]["labels"]["app.kubernetes.io/name"] for body in _objects()}
    assert names == {open_loop.LABEL}


def test_the_script_runs_as_the_pod_runs_it(tmp_path: pathlib.Path) -> None:
    # -I: isolated, so nothing but the standard library (and no bench package) is found.
    script = pathlib.Path(http_load.__file__).read_text(encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "--users" in done.stdout


def test_parse_results_reads_only_the_run_lines() -> None:
    line = {"users": 50, "p95": 0.01}
    log = f"signed up 50 users\n{http_load.RESULT_MARK}{json.dumps(line)}\nnoise\n"
    assert open_loop.parse_results(log) == [line]


async def _todo_server(chunked: bool) -> tuple[asyncio.Server, int]:
    """A tiny keep-alive HTTP/1.1 server with the todo API's statuses."""
    made = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal made
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lines = head.decode().split("\r\n")
            method = lines[0].split()[0]
            length = next(
                (int(v) for n, _, v in (x.partition(":") for x in lines) if n == "content-length"),
                0,
            )
            await reader.readexactly(length)
            made += 1
            status, body = {"POST": (201, {"id": made}), "DELETE": (204, None)}.get(
                method, (200, {"id": made})
            )
            text = b"" if body is None else json.dumps(body).encode()
            if chunked and text:
                framing = b"transfer-encoding: chunked\r\n\r\n"
                text = b"%x\r\n%s\r\n0\r\n\r\n" % (len(text), text)
            else:
                framing = b"content-length: %d\r\n\r\n" % len(text)
            writer.write(b"HTTP/1.1 %d X\r\n" % status + framing + text)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_open_loop_against_a_real_server_with_chunked_answers() -> None:
    async def scenario() -> dict[str, Any]:
        server, port = await _todo_server(chunked=True)
        async with server:
            auths = [f"cookie: s={index}" for index in range(10)]
            tally = await http_load.open_loop(port, auths, 2.0, rate=5.0)
        return tally.figures()

    figures = asyncio.run(scenario())
    assert figures["errors"] == 0, figures["error_kinds"]
    # 10 users x 5 requests/s for 2 s: about 100 arrivals (Poisson), all answered
    assert 50 < figures["answered"] < 160
    assert figures["answered"] == figures["arrived"]


class _Cluster:
    """Records what the bench asks of the cluster; the pod "runs" by replaying a log.

    Only for the order of operations: the pod itself runs in tests/e2e's cluster.
    """

    def __init__(self, log: str, phase: str = "Succeeded") -> None:
        self.log, self.phase = log, phase
        self.calls: list[tuple[str, str]] = []

    def list(self, version: str, kind: str, namespace: str, **options: str) -> list[Any]:
        if kind == "Pod" and "name=backend" in options.get("label_selector", ""):
            ready = [{"type": "Ready", "status": "True"}]
            return [
                {
                    "metadata": {},
                    "status": {"conditions": ready},
                    "spec": {"containers": [{"image": "lumina/backend:abc"}]},
                }
            ]
        return []

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", f"{body['kind']} {body['metadata']['name']}"))
        return body

    def get(self, version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        waiting = {"state": {"waiting": {"reason": "ErrImageNeverPull"}}}
        statuses = [waiting] if self.phase == "Pending" else []
        return {"status": {"phase": self.phase, "containerStatuses": statuses}}

    def pod_log(self, namespace: str, pod: str, container: str, **options: Any) -> str:
        return self.log

    def delete(self, version: str, kind: str, namespace: str, name: str) -> None:
        self.calls.append(("delete", f"{kind} {name}"))


def _in_cluster(cluster: _Cluster) -> list[dict[str, Any]]:
    ctx = measuring.Context(
        repo=pathlib.Path("."),
        work=pathlib.Path("."),
        console=rich.console.Console(quiet=True),
        load_seconds=1.0,
    )
    config = settings.Settings(namespace="lumina", release="lumina")  # type: ignore[call-arg]
    return open_loop.in_cluster(ctx, cluster, config, 1)  # type: ignore[arg-type]


def test_in_cluster_creates_then_deletes_everything_and_reads_the_runs() -> None:
    run = {"users": 50, "repetition": 0, "p95": 0.01, "errors": 0}
    cluster = _Cluster(f"{http_load.RESULT_MARK}{json.dumps(run)}\n")
    assert _in_cluster(cluster) == [run]
    applied = [what for verb, what in cluster.calls if verb == "apply"]
    deleted = [what for verb, what in cluster.calls if verb == "delete"]
    assert [what.split()[0] for what in applied] == ["NetworkPolicy", "NetworkPolicy", "Pod"]
    assert deleted == list(reversed(applied))


def test_in_cluster_a_failed_pod_is_deleted_and_reported() -> None:
    cluster = _Cluster("Traceback: boom\n", phase="Failed")
    with pytest.raises(RuntimeError, match=r"ended Failed with 0 runs: Traceback: boom"):
        _in_cluster(cluster)
    assert sum(verb == "delete" for verb, _ in cluster.calls) == 3


def test_in_cluster_a_pod_that_never_starts_is_given_up_naming_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(open_loop, "PENDING_SECONDS", 0)
    cluster = _Cluster("", phase="Pending")
    with pytest.raises(RuntimeError, match=r"ended Pending \(waiting: ErrImageNeverPull\)"):
        _in_cluster(cluster)
    assert sum(verb == "delete" for verb, _ in cluster.calls) == 3
