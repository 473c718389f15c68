"""Notifications: a webhook receiver that is down or hangs must not slow the daemon's cycle.

What it runs: the daemon's own ``running.Daemon._cycle`` — the cycle, then the timeline,
``Notifier.cycle_ended`` and the cycle's log lines — with the daemon's real
:class:`notifying.Notifier`, built by the daemon from its settings' ``notify_webhooks``,
its real ``post_json`` and background thread, talking to real sockets on 127.0.0.1,
under four receivers: none configured; a closed port (down); a socket that accepts the
connection and never answers (hung: a delivery attempt waits the full
``TIMEOUT_SECONDS``); a working ``http.server`` that counts the documents it gets. Both
receivers run in a child process, as a real receiver does, so their own work does not
compete with the daemon for the interpreter.

The cycle is real: the daemon's no-op cycle (``reconciling.run_cycle``, ``first=False``,
commit mode) in a clone of this repository whose state says its HEAD is deployed — git
read, snapshot, decide, conclude, about 20 ms, the shortest cycle there is, so the one a
delay would show most in — with no cluster, helm or docker adapter at all (one it
reached would fail the cycle, which is checked: every cycle must end nothing-to-do).
What is not real: its result is then swapped for a rolled-back
:class:`outcomes.CycleResult` with a diagnosis (what ``concluding`` makes after a
crash-looping backend was rolled back; a real one needs a cluster), so that every cycle
is one worth a notification; each names a new revision, so none is the "same failure
again" the notifier says only once. The same daemon path is also timed with no cycle
work at all, where any cost of notifying shows at full size.

After ``WARM_UP`` cycles, rounds of ``CYCLES`` cycles per receiver, the receivers one
after the other in each round (each round in another order), a fresh daemon per block
(stopped after it, a hung receiver ended then), so each block's timings carry only its
own receiver's background work. A second no-webhook block per round shows how far two
identical blocks differ on this machine: the noise a ratio must be read against; ratios
pair blocks of the same round. Traffic: 127.0.0.1 only, at most one delivery per cycle
plus the notifier's retries, all ended with the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench import measuring
from reconciler import discovery, services, settings
from reconciler.cluster import rollout
from reconciler.cycle import metrics, observing, outcomes, reconciling, state, toolboxes
from reconciler.daemon import notifying, running
from reconciler.inputs import worktree_reading

NAME = "notify"
TITLE = "Notifications (webhook receiver down or hung)"
CYCLES = 10
#: untimed cycles before the first round: imports, first git reads, caches
WARM_UP = 3

DIAGNOSIS = rollout.Diagnosis(
    service="backend",
    reason=rollout.FailureReason.CRASH_LOOP,
    summary="the container exited 1 three times in a row",
    pod="backend-5c9d7f-x2kq1",
    logs=("Traceback (most recent call last):", "SystemExit: the backend refuses to start"),
    events=("Warning BackOff: Back-off restarting failed container backend",),
)


def _rolled_back(revision: int) -> outcomes.CycleResult:
    return outcomes.CycleResult(
        outcomes.Outcome.ROLLED_BACK,
        f"backend: CrashLoopBackOff — rolled back to revision {revision - 1}",
        source=f"worktree bench-{revision}",
        built=("backend",),
        revision=revision,
        diagnosis=DIAGNOSIS,
        phases={"plan": 0.005, "build": 4.2, "deploy": 6.7, "ready": 9.4, "rollback": 7.9},
        rollout=rollout.RolloutResult(rollout.Verdict.FAILED, 9.4, diagnosis=DIAGNOSIS),
    )


#: A receiver in a process of its own, as a real one is (its work must not take the
#: daemon's interpreter lock): prints its port, then writes a line per connection
#: ("hung": accepted, never answered) or per document ("working": arrival time and body).
_RECEIVER = """
import http.server, json, socket, sys, time
mode, record = sys.argv[1], open(sys.argv[2], "a", encoding="utf-8", buffering=1)
if mode == "hung":
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    held = []
    while True:
        held.append(listener.accept()[0])
        record.write("held\\n")
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        record.write(json.dumps({"arrived": time.time(), "body": body}) + "\\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""


class _Receiver:
    """A webhook receiver on 127.0.0.1 in a child process; ``close`` ends it (and with it
    every connection it holds)."""

    def __init__(self, mode: str, record: pathlib.Path) -> None:
        self.record = record
        record.write_text("", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER, mode, str(record)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        port = int(self._process.stdout.readline())
        self.url = f"http://127.0.0.1:{port}/hooks/bench"

    def lines(self) -> list[str]:
        return self.record.read_text(encoding="utf-8").splitlines()

    def documents(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, document) for every document a working receiver got."""
        found = [json.loads(line) for line in self.lines()]
        return [(float(item["arrived"]), item["body"]) for item in found]

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()


def _closed_port_url() -> str:
    with socket.socket() as probe:  # bound, never listening, closed: nobody is there
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/hooks/bench"


def _clone(ctx: measuring.Context) -> tuple[settings.Settings, list[services.ServicePlugin]]:
    """A clone of this repository whose saved state says its HEAD is deployed."""
    clone = ctx.work / "repo"
    measuring.run(["git", "clone", "-q", "--shared", str(ctx.repo), str(clone)])
    measuring.git(clone, "checkout", "-q", "-B", "main")
    config = settings.load_settings(clone, overrides={"mode": settings.TriggerMode.COMMIT})
    plugins = list(discovery.discover_services(clone).plugins)
    box = _box(config, plugins, worktree_reading.HashCache(ctx.work / "hashes.json"))
    wanted = observing.desired(observing.Sources.of(box))
    images = {inputs.name: wanted.images[inputs.name] for inputs in wanted.snapshot.services}
    state.save(
        box.state_dir,
        state.State(
            services={
                inputs.name: state.DeployedImage(
                    digest=inputs.digest,
                    tag=inputs.tag,
                    image=images[inputs.name].removesuffix(f":{inputs.tag}"),
                )
                for inputs in wanted.snapshot.services
            },
            chart_digest=wanted.snapshot.chart_digest,
            release_inputs=wanted.release_inputs,
            secret_fingerprints=dict(wanted.secret_fingerprints),
            revision=1,
        ),
    )
    return config, plugins


def _box(
    config: settings.Settings,
    plugins: list[services.ServicePlugin],
    cache: worktree_reading.HashCache,
) -> toolboxes.Toolbox:
    return toolboxes.Toolbox(
        config=config,
        plugins=plugins,
        # No adapter: the no-op cycle needs none, and one it reached would fail the cycle.
        deps=toolboxes.Dependencies(
            images=None,  # type: ignore[arg-type]
            kube=None,  # type: ignore[arg-type]
            releaser=None,  # type: ignore[arg-type]
            store=state.Directory(config.repo_path(config.state_dir)),
        ),
        metrics=metrics.Metrics(),
        hash_cache=cache,
    )


def _time_cycles(daemon: running.Daemon, count: int) -> list[float]:
    async def cycles() -> list[float]:
        seconds = []
        for _ in range(count):
            with measuring.stopwatch() as elapsed:
                await daemon._cycle(first=False)
            seconds.append(elapsed())
        return seconds

    return asyncio.run(cycles())


@contextlib.contextmanager
def _cycle_then_rolled_back(*, work: bool, outcomes_seen: list[str]) -> Iterator[None]:
    """``reconciling.run_cycle`` (the daemon's call) runs the real cycle when ``work``,
    notes its outcome, and returns a new rolled-back result, revision 2, 3, … instead."""
    real = reconciling.run_cycle
    revisions = itertools.count(2)

    async def cycle(
        box: toolboxes.Toolbox, *, first: bool = False, force_upgrade: bool = False
    ) -> outcomes.CycleResult:
        if work:
            done = await real(box, first=first, force_upgrade=force_upgrade)
            outcomes_seen.append(done.outcome.value)
        return _rolled_back(next(revisions))

    reconciling.run_cycle = cycle
    try:
        yield
    finally:
        reconciling.run_cycle = real


@contextlib.contextmanager
def _daemon_log(path: pathlib.Path) -> Iterator[None]:
    """The daemon's log lines go to a file (formatted, as a daemon's are), not the table."""
    logger = logging.getLogger("lumina")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


VARIANTS = {
    "none": "no webhook configured",
    "down": "receiver down (closed port)",
    "hung": "receiver accepts, never answers",
    "working": "working receiver (http.server)",
    #: a second no-webhook block each round: how far two identical blocks differ here
    "again": "no webhook again (the noise)",
}


@dataclasses.dataclass
class _Blocks:
    """Per receiver: every cycle's seconds, and each round's block median."""

    seconds: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {key: [] for key in VARIANTS}
    )
    medians: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {key: [] for key in VARIANTS}
    )
    hung_held: int = 0

    def ratios(self, key: str) -> list[float]:
        """Per round, this receiver's block median over the no-webhook one of that round:
        blocks seconds apart, so a machine whose load drifts compares like with like."""
        pairs = zip(self.medians[key], self.medians["none"], strict=True)
        return [mine / none for mine, none in pairs]


def _measure(
    ctx: measuring.Context,
    config: settings.Settings,
    plugins: list[services.ServicePlugin],
    working: _Receiver,
    *,
    rounds: int,
) -> _Blocks:
    blocks = _Blocks()
    cache = worktree_reading.HashCache(ctx.work / "hashes.json")  # the daemon's, in memory
    keys = list(VARIANTS)
    warm = running.Daemon(_box(config, plugins, cache))
    _time_cycles(warm, WARM_UP)  # not any receiver's cost
    warm.notifier.stop()
    for number in range(rounds):
        ctx.say(f"round {number + 1}/{rounds}: {CYCLES} cycles per receiver")
        # Each round in another order, so no receiver always follows the same one.
        for key in keys[number % len(keys) :] + keys[: number % len(keys)]:
            hung = _Receiver("hung", ctx.work / "hung.log") if key == "hung" else None
            urls = {
                "none": [],
                "again": [],
                "down": [_closed_port_url()],
                "hung": [hung.url] if hung is not None else [],
                "working": [working.url],
            }[key]
            # As the daemon reads its settings: the URL validated, the notifier built from it.
            overrides = {"mode": config.mode, "notify_webhooks": urls}
            box = _box(settings.load_settings(config.repo, overrides=overrides), plugins, cache)
            daemon = running.Daemon(box)
            assert len(daemon.notifier.urls) == len(urls)
            try:
                seconds = _time_cycles(daemon, CYCLES)
                if key == "working":
                    daemon.notifier.drain(20)
                if hung is not None:  # its first delivery is surely waiting on it
                    deadline = time.monotonic() + 5
                    while not hung.lines() and time.monotonic() < deadline:
                        time.sleep(0.01)
            finally:
                daemon.notifier.stop()
                if hung is not None:
                    blocks.hung_held += len(hung.lines())
                    hung.close()
            blocks.seconds[key].extend(seconds)
            blocks.medians[key].append(measuring.median(seconds))
    return blocks


def _us(value: float) -> str:
    return f"{value * 1e6:.0f} µs" if value < 0.001 else measuring.seconds(value)


def _spread(values: list[float]) -> str:
    median, low, high = measuring.median(values), min(values), max(values)
    return f"{_us(median)} ({_us(low)}-{_us(high)}, n={len(values)})"


def run(ctx: measuring.Context) -> measuring.GroupResult:
    result = measuring.GroupResult(NAME, TITLE)
    config, plugins = _clone(ctx)
    rounds = ctx.times(15)
    working = _Receiver("working", ctx.work / "working.log")
    seen: list[str] = []
    try:
        with _daemon_log(ctx.work / "daemon.log"):
            with _cycle_then_rolled_back(work=True, outcomes_seen=seen):
                whole = _measure(ctx, config, plugins, working, rounds=rounds)
            whole_arrivals = working.documents()
            with _cycle_then_rolled_back(work=False, outcomes_seen=seen):
                bare = _measure(ctx, config, plugins, working, rounds=rounds)
        bare_arrivals = working.documents()[len(whole_arrivals) :]
    finally:
        working.close()
    queued = rounds * CYCLES
    real_noop = seen.count(outcomes.Outcome.NOTHING_TO_DO.value)
    latencies = [arrived - body["finished_at"] for arrived, body in whole_arrivals]
    revisions = {int(body["revision"]) for _, body in whole_arrivals}
    log_lines = (ctx.work / "daemon.log").read_text(encoding="utf-8").splitlines()
    result.raw.update(
        cycles_per_block=CYCLES,
        rounds=rounds,
        real_cycle_outcomes=sorted(set(seen)),
        whole_cycle_seconds=whole.seconds,
        whole_cycle_block_medians=whole.medians,
        whole_cycle_round_ratios={key: whole.ratios(key) for key in VARIANTS},
        bare_path_seconds=bare.seconds,
        bare_path_block_medians=bare.medians,
        bare_path_round_ratios={key: bare.ratios(key) for key in VARIANTS},
        working_received=len(whole_arrivals),
        working_received_bare=len(bare_arrivals),
        working_queued=queued,
        working_latency_seconds=latencies,
        hung_connections_held=whole.hung_held + bare.hung_held,
        cannot_notify_log_lines=sum(1 for line in log_lines if "cannot notify" in line),
    )
    result.rows.append(
        measuring.Row(
            "the real no-op cycle under it ended nothing-to-do",
            f"{real_noop} of {len(seen)} cycles (warm-up included)",
            "all",
            real_noop == len(seen) == WARM_UP + len(VARIANTS) * queued,
        )
    )
    for key, label in VARIANTS.items():
        added = measuring.median(bare.seconds[key]) - measuring.median(bare.seconds["none"])
        ratios = whole.ratios(key)
        paired = (
            ""
            if key == "none"
            else f"; {measuring.median(ratios):.2f}x of no webhook "
            f"({min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds)"
        )
        result.rows.append(
            measuring.Row(
                f"cycle + rolled-back notification, {label}",
                f"{_spread(whole.seconds[key])}{paired}; the daemon's path alone "
                f"{_us(measuring.median(bare.seconds[key]))}"
                + ("" if key == "none" else f" ({added * 1e6:+.0f} µs)"),
                "within noise" if key in ("down", "hung", "working") else "",
            )
        )
    result.rows.append(
        measuring.Row(
            "working receiver: documents received",
            f"{len(whole_arrivals)} of {queued} cycles ({len(revisions)} revisions), "
            f"{len(bare_arrivals)} of {queued} without cycle work; cycle end → received "
            + (_spread(latencies) if latencies else "n/a"),
            "all",
            len(whole_arrivals) == len(revisions) == queued and len(bare_arrivals) == queued,
        )
    )
    result.notes.append(
        "cycle = the daemon's real no-op cycle (commit mode, a clone whose state has its HEAD "
        "deployed, no cluster/helm/docker adapter), its result swapped for a rolled-back one "
        "so every cycle notifies; 'path alone' = the same daemon path with no cycle work; "
        f"the hung receiver held {whole.hung_held + bare.hung_held} connections open for the "
        f"{notifying.TIMEOUT_SECONDS:.0f} s timeout while the cycles went on"
    )
    return result
