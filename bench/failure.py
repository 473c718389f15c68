"""A backend that crashes on start: how long until the old release serves again.

What it runs: in a clone that owns the release, a commit whose backend image builds but
exits at start (its CMD replaced), then ``lumina-reconcile once --mode commit``: Helm
applies, the cycle's own watch sees the crash, rolls back and waits for the old pod.
Measured, per run: seconds from the cycle's start to the rolled-back backend serving
again (the end of ``once``, which waits for it), what ended the rollout wait and after
how long (the cycle's record), and the backend's downtime: a probe thread, signed in
as a bench user, lists that user's todos through the frontend's NodePort every 0.25 s
(the frontend forwards it to the backend: 200 is up, anything else counts as down).
Helm's timeout stays at its 300 s default, so a run that sat it out shows as ~300 s.
Then the fix is committed and deployed (not timed) before the next run. It runs twice:
with trial starts on (the default: the image is refused before the serving pod is
touched, so the downtime should be none) and off (``LUMINA_TRIAL_STARTS=false``: the
rollout fails and is rolled back, the path left for failures a trial cannot catch).
"""

from __future__ import annotations

import os
import pathlib
import threading
import time
import uuid

import httpx

from bench import measuring, stack

NAME = "failure"
TITLE = "Failure (a backend that crashes on start: refused by its trial, or rolled back)"
TARGET_SECONDS = 30.0
FRONTEND = "http://127.0.0.1:30080"
DOCKERFILE = "services/backend/Dockerfile"


def _signed_in() -> httpx.Client:
    """A bench user's session on the frontend (the backend must be up to make one)."""
    client = httpx.Client(base_url=FRONTEND, timeout=2)
    account = {"email": f"bench-{uuid.uuid4().hex[:8]}@example.com", "password": "bench " * 3}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            client.post("/api/auth/register", json=account, timeout=10)
            if client.post("/api/auth/login", json=account, timeout=10).status_code == 200:
                return client
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise measuring.NotRunError("could not sign a bench user in through the frontend")


class DowntimeProbe:
    """Seconds the backend did not answer, sampled every 0.25 s, bounded by ``limit``."""

    def __init__(self, client: httpx.Client, limit: float) -> None:
        self._client = client
        self.down = 0.0
        self._stop = threading.Event()
        self._limit = limit
        self._thread = threading.Thread(target=self._run, name="downtime-probe", daemon=True)

    def _run(self) -> None:
        ends = time.monotonic() + self._limit
        while not self._stop.is_set() and time.monotonic() < ends:
            started = time.monotonic()
            try:
                up = self._client.get("/api/todos").status_code == 200
            except httpx.HTTPError:
                up = False
            self._stop.wait(0.25)
            if not up:
                self.down += time.monotonic() - started

    def __enter__(self) -> DowntimeProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _crash(good: str, marker: str) -> str:
    exit_now = f"import sys; sys.exit('bench: the backend refuses to start {marker}')"
    return good.replace(
        'CMD ["/opt/venv/bin/uvicorn"',
        f'CMD ["/opt/venv/bin/python", "-c", "{exit_now}"]\n# was: CMD ["/opt/venv/bin/uvicorn"',
        1,
    )


def _runs(
    ctx: measuring.Context,
    clone: pathlib.Path,
    client: httpx.Client,
    good: str,
    *,
    trial: bool,
) -> list[dict[str, float | str]]:
    """Three crashing commits, each deployed with trial starts on or off, then fixed."""
    dockerfile = clone / DOCKERFILE
    runs: list[dict[str, float | str]] = []
    mode = "trial" if trial else "no-trial"
    os.environ["LUMINA_TRIAL_STARTS"] = "true" if trial else "false"
    try:
        for attempt in range(ctx.times(3)):
            dockerfile.write_text(_crash(good, f"{stack.RUN_ID}-{mode}-{attempt}"), "utf-8")
            measuring.git(clone, "commit", "-q", "-am", f"bench: crashing backend {attempt}")
            with DowntimeProbe(client, limit=900) as probe:
                seconds, code, line = stack.reconcile(clone, "once", "--mode", "commit")
                # The last of the downtime: the old pod is Ready, the Service may lag.
                time.sleep(1.0)
            cycle = stack.last_cycle(clone)
            wait = cycle.get("rollout") or {}
            runs.append(
                {
                    "seconds": seconds,
                    "down": probe.down,
                    "wait": float(wait.get("seconds", 0.0)),
                    "rollback": float((cycle.get("phases") or {}).get("rollback", 0.0)),
                    "ended_by": str(wait.get("ended_by", "?")),
                    "outcome": str(cycle.get("outcome", "?")),
                }
            )
            ctx.say(
                f"{mode} run {attempt + 1}: {cycle.get('outcome')} in {seconds:.1f}s "
                f"(rollout wait ended by {wait.get('ended_by', 'none')}), "
                f"backend down {probe.down:.1f}s; exit {code}: {line}"
            )
            dockerfile.write_text(good, "utf-8")
            measuring.git(clone, "commit", "-q", "-am", f"bench: backend fixed {attempt}")
            stack.reconcile_until_done(ctx, clone, "once", "--mode", "commit")
    finally:
        os.environ.pop("LUMINA_TRIAL_STARTS", None)
    return runs


def run(ctx: measuring.Context) -> measuring.GroupResult:
    result = measuring.GroupResult(NAME, TITLE)
    stack.docker_ready()
    clone = stack.clone(ctx, "failure-repo")
    good = (clone / DOCKERFILE).read_text(encoding="utf-8")
    if 'CMD ["/opt/venv/bin/uvicorn"' not in good:
        raise measuring.NotRunError(f"{DOCKERFILE} no longer starts uvicorn as this bench expects")
    with stack.borrowed_release(ctx):
        stack.reconcile_until_done(ctx, clone, "once", "--mode", "commit")
        client = _signed_in()
        tried = _runs(ctx, clone, client, good, trial=True)
        runs = _runs(ctx, clone, client, good, trial=False)
    tried_down = measuring.median([float(r["down"]) for r in tried])
    tried_total = measuring.median([float(r["seconds"]) for r in tried])
    result.rows += [
        measuring.Row(
            "trial start on (default): backend downtime during the bad upgrade (median)",
            measuring.seconds(tried_down),
            "0 s",
            tried_down == 0.0,
        ),
        measuring.Row(
            "trial start on: the whole cycle until refused, build included (median)",
            f"{measuring.seconds(tried_total)} "
            f"({', '.join(sorted({str(r['outcome']) for r in tried}))})",
        ),
    ]
    total = measuring.median([float(r["seconds"]) for r in runs])
    down = measuring.median([float(r["down"]) for r in runs])
    wait = measuring.median([float(r["wait"]) for r in runs])
    # From the new pod's start (its first crash comes a second or two later) until the
    # old one serves again: the watch's wait, then the rollback and its own wait.
    recovery = measuring.median([float(r["wait"]) + float(r["rollback"]) for r in runs])
    ended = sorted({str(r["ended_by"]) for r in runs})
    result.rows += [
        measuring.Row(
            "trial start off, crash: new pod started → old release serving again (median)",
            measuring.seconds(recovery),
            f"< {TARGET_SECONDS:.0f} s (Helm timeout left at 300 s)",
            recovery < TARGET_SECONDS,
        ),
        measuring.Row(
            "trial start off, crash: the whole cycle, build included (median)",
            f"{measuring.seconds(total)} ({measuring.spread([float(r['seconds']) for r in runs])})",
        ),
        measuring.Row(
            "trial start off, crash: rollout wait, until it was ended by",
            f"{measuring.seconds(wait)} by {', '.join(ended)}",
        ),
        measuring.Row("trial start off, crash: backend downtime (median)", measuring.seconds(down)),
    ]
    result.raw["runs"] = runs
    result.raw["trial_runs"] = tried
    return result
