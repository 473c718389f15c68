"""The daemon's status page in real headless Chromium, against a real status server.

The server is the daemon's own (:class:`serving.StatusServer`) serving documents that
:func:`reporting.status_document` builds from real :class:`outcomes.CycleResult` values
and a real state file: 198 cycles of history, then a converged cycle, then a rolled-back
one with a diagnosis — the page must follow without a reload. A screenshot of each
state is kept under ``.lumina/`` (git-ignored; CI keeps it as an artifact; the README
shows a copy from ``docs/images/``). Every request the page makes must stay on 127.0.0.1.

Needs Debian's ``chromium`` (``tools/system-packages.sh`` installs it; or set
``CHROMIUM_PATH``), driven by the ``playwright`` package without a browser download.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import settings
from reconciler.cluster import app_urls, providers, rollout
from reconciler.cycle import metrics, outcomes, state
from reconciler.daemon import reporting, serving
from reconciler.releasing import drifting

try:
    from playwright import sync_api
except ImportError:  # the test dependency group pins it; say what is missing, never skip
    pytest.fail("playwright is needed: pip install the 'test' dependency group", pytrace=False)

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / ".lumina"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
BACKEND_TAG = "3f9a2c1d0e4b5a6978877665"


def _image(service: str, tag: str) -> state.DeployedImage:
    return state.DeployedImage(digest=f"sha256:{tag}{'0' * 40}", tag=tag, image=f"lumina/{service}")


def _save(config: settings.Settings, revision: int) -> None:
    state.save(
        config.repo_path(config.state_dir),
        state.State(
            services={
                "backend": _image("backend", BACKEND_TAG),
                "chatbot": _image("chatbot", "77aa00bb11cc22dd33ee44ff"),
                "frontend": _image("frontend", "0123456789abcdef01234567"),
            },
            revision=revision,
        ),
    )


def _history(count: int) -> list[dict[str, Any]]:
    """Earlier cycles: mostly nothing to do, a build-and-deploy now and then."""
    started = time.time() - 3600
    cycles = []
    for number in range(count):
        if number % 20 == 0:
            result = outcomes.CycleResult(
                outcomes.Outcome.CONVERGED,
                f"revision {number // 20 + 1}: frontend=abc{number}",
                built=("frontend",),
                revision=number // 20 + 1,
                phases={"plan": 0.3, "build": 13.3, "load": 4.2, "deploy": 4.8, "ready": 6.1},
                finished_at=started + number * 15,
            )
        else:
            result = outcomes.CycleResult(
                outcomes.Outcome.NOTHING_TO_DO,
                "the cluster already runs this",
                phases={"plan": 0.03},
                finished_at=started + number * 15,
            )
        cycles.append(result.to_json())
    return cycles


DIAGNOSIS = rollout.Diagnosis(
    service="backend",
    reason=rollout.FailureReason.CRASH_LOOP,
    summary="the container exited 1 three times in a row",
    pod="backend-5c9d7f-x2kq1",
    logs=("Traceback (most recent call last):", "SystemExit: e2e: the backend refuses to start"),
    events=("Warning BackOff: Back-off restarting failed container backend",),
)
CONVERGED = outcomes.CycleResult(
    outcomes.Outcome.CONVERGED,
    f"revision 12: backend={BACKEND_TAG[:12]}",
    source="worktree 1a2b3c4",
    built=("backend",),
    revision=12,
    phases={"plan": 0.005, "build": 4.01, "load": 3.32, "deploy": 6.74, "ready": 5.2},
    rollout=rollout.RolloutResult(rollout.Verdict.READY, 5.2),
    states=("images-missing", "undelivered", "out-of-sync", "unverified", "in-sync"),
)
ROLLED_BACK = outcomes.CycleResult(
    outcomes.Outcome.ROLLED_BACK,
    "backend: CrashLoopBackOff — rolled back to revision 12",
    source="worktree 5d6e7f8",
    built=("backend",),
    revision=14,
    diagnosis=DIAGNOSIS,
    phases={"plan": 0.005, "build": 4.2, "load": 3.3, "deploy": 6.7, "ready": 9.4, "rollback": 7.9},
    rollout=rollout.RolloutResult(rollout.Verdict.FAILED, 9.4, diagnosis=DIAGNOSIS),
    states=(
        "images-missing",
        "undelivered",
        "out-of-sync",
        "unverified",
        "rollout-failed",
        "rolled-back",
    ),
)


class Feed:
    """What the daemon would serve: its last result, its timeline, its drift."""

    def __init__(self, config: settings.Settings) -> None:
        self.config = config
        self.timeline = reporting.Timeline(_history(198))
        self.last: outcomes.CycleResult | None = None
        self.drift: list[drifting.Drift] = []

    def ended(self, result: outcomes.CycleResult) -> None:
        self.last = result
        self.timeline.add(result)

    def status(self) -> dict[str, Any]:
        live = reporting.Live(
            pid=os.getpid(),
            started_at=time.time() - 7200,
            last=self.last,
            cycles=self.timeline.cycles(),
            drift=self.drift,
        )
        return reporting.status_document(self.config, live)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run tools/system-packages.sh tests "
            "(Debian's chromium)"
        )
    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_the_page_shows_a_converged_then_a_rolled_back_cycle_live(
    project: pathlib.Path, browser: Any
) -> None:
    config = settings.load_settings(project)
    _save(config, revision=12)
    # What the local provider says when the cluster comes up (wiring records it).
    app_urls.record(
        config.repo_path(config.state_dir),
        "local",
        providers.ClusterInfo(
            project / "kubeconfig", "lumina", "192.0.2.2", app_url="http://127.0.0.1:30080"
        ),
    )
    feed = Feed(config)
    feed.ended(CONVERGED)
    server = serving.StatusServer(0, feed.status, metrics.Metrics(), cycles=feed.timeline.cycles)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    requested: list[str] = []
    problems: list[str] = []
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(15_000)
        page.on("request", lambda request: requested.append(request.url))
        page.on(
            "console",
            lambda message: problems.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/")
        page.wait_for_selector("body[data-loaded=true]")

        backend = page.locator("#services tr[data-service=backend]")
        assert backend.locator(".rollout").inner_text() == "ready"
        assert BACKEND_TAG in backend.inner_text()
        assert page.locator("#revision .value").inner_text() == "12"
        assert page.locator("#last-cycle [data-outcome=converged]").count() == 1
        assert page.locator("#app a").get_attribute("href") == "http://127.0.0.1:30080"
        assert "no failure in the recent cycles" in page.locator("#failure").inner_text()
        assert "none found" in page.locator("#drift").inner_text()
        assert page.locator("#timeline .cycle").count() == 199
        newest = page.locator("#timeline .cycle").first
        assert newest.get_attribute("data-outcome") == "converged"
        # Where the seconds went: one bar per phase, widest for the deploy.
        widths = {
            phase: newest.locator(f".phase-{phase}").bounding_box()["width"]
            for phase in ("build", "load", "deploy", "ready")
        }
        assert max(widths, key=lambda phase: widths[phase]) == "deploy", widths
        assert "rollout ended by ready" in newest.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "status-page-converged.png"), full_page=True)

        # The next cycle fails and is rolled back: the page follows without a reload.
        _save(config, revision=14)
        feed.ended(ROLLED_BACK)
        feed.drift = [drifting.Drift("frontend", "Deployment", "frontend", "spec.replicas", 1, 2)]
        page.wait_for_selector("#last-cycle [data-outcome=rolled-back]")
        assert backend.locator(".rollout").inner_text() == "rolled back (CrashLoopBackOff)"
        assert page.locator("#revision .value").inner_text() == "14"
        failure = page.locator("#failure").inner_text()
        assert "backend: CrashLoopBackOff" in failure
        assert "the container exited 1 three times in a row" in failure
        assert "pod backend-5c9d7f-x2kq1" in failure
        assert (
            "SystemExit: e2e: the backend refuses to start"
            in page.locator("#failure .logs").inner_text()
        )
        assert (
            "Back-off restarting failed container" in page.locator("#failure .events").inner_text()
        )
        assert "frontend: Deployment/frontend spec.replicas" in page.locator("#drift").inner_text()
        page.wait_for_function("document.querySelectorAll('#timeline .cycle').length === 200")
        assert page.locator("#timeline .cycle").first.get_attribute("data-outcome") == "rolled-back"
        assert page.locator("#timeline .cycle").first.locator(".phase-rollback").count() == 1
        page.screenshot(path=str(SCREENSHOTS / "status-page-rolled-back.png"), full_page=True)
    finally:
        server.stop()
    assert requested, "the page made no request"
    assert all(url.startswith(f"{base}/") or url.startswith("data:") for url in requested), (
        requested
    )
    assert {url.removeprefix(base) for url in requested} >= {
        "/",
        "/page.css",
        "/page.js",
        "/status",
        "/cycles",
    }
    assert problems == []
    assert (SCREENSHOTS / "status-page-converged.png").stat().st_size > 10_000
    assert (SCREENSHOTS / "status-page-rolled-back.png").stat().st_size > 10_000
