"""Task runner: lint, tests, the local cluster, bootstrap and benchmarks.

The README's two commands are ``nox -s bootstrap`` (bring the whole stack up) and
``nox -t ci`` (every check CI runs). Dependencies come from ``pyproject.toml`` and each
service's own requirements files, so there is one list of each.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import nox

ROOT = pathlib.Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
BACKEND = ROOT / "services" / "backend"
CHATBOT = ROOT / "services" / "chatbot"
FRONTEND = ROOT / "services" / "frontend"

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def _python(version: str) -> str:
    """An interpreter for ``version``: one of pyenv's installed builds, else from PATH.

    pyenv's builds come first and by full path: its shims put a ``python3.13`` on PATH
    that only works while 3.13 is the active pyenv version.
    """
    pyenv_root = os.environ.get("PYENV_ROOT", str(pathlib.Path.home() / ".pyenv"))
    found = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    return found[-1] if found else version


PY = _python("3.13")


def _install_project(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python=PY, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff on everything Python, mypy --strict on reconciler/ and plugins/, import contracts."""
    _install_project(session, "lint")
    session.run("ruff", "check", "reconciler", "plugins", "bench", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "reconciler", "plugins", "bench", "noxfile.py")
    session.run("mypy", "--strict", "reconciler", "plugins")
    session.run("lint-imports")


@nox.session(python=PY, tags=["ci"])
def tests(session: nox.Session) -> None:
    """Reconciler tests: settings, plugins, planning, against real git and files."""
    _install_project(session, "test")
    _test_packages(session, "tests")
    # The BuildKit tests take both CLI routes; buildx is built once and cached.
    session.run("bash", "tools/install-buildx.sh", external=True)
    session.run(
        "pytest",
        "tests",
        "--ignore=tests/chart",
        "--ignore=tests/cluster",
        "--ignore=tests/e2e",
        "--ignore=tests/tools",
        "--ignore=tests/faults",
        "--ignore=tests/security",
        "-n",
        "2",
        *session.posargs,
    )


@nox.session(python=PY, tags=["ci"])
def backend(session: nox.Session) -> None:
    """Backend service tests against a real SQLite file and a real server."""
    session.install(
        "-r", str(BACKEND / "requirements.txt"), "-r", str(BACKEND / "requirements-dev.txt")
    )
    session.chdir(BACKEND)
    session.run("pytest", *session.posargs)


@nox.session(python=PY, tags=["ci"])
def chatbot(session: nox.Session) -> None:
    """Chatbot tests: real MCP tools against a real backend; only the model is scripted."""
    session.install(
        "-r",
        str(CHATBOT / "requirements.txt"),
        "-r",
        str(CHATBOT / "requirements-dev.txt"),
        "-r",
        str(BACKEND / "requirements.txt"),
    )
    session.chdir(CHATBOT)
    session.run("pytest", *session.posargs, env={"BACKEND_SRC": str(BACKEND)})


@nox.session(python=PY, tags=["ci"])
def frontend(session: nox.Session) -> None:
    """Frontend unit tests (vitest) and a real-Chromium browser test against a real backend."""
    _test_packages(session, "frontend")
    session.install("-r", str(BACKEND / "requirements.txt"))
    python = pathlib.Path(session.virtualenv.bin) / "python"
    env = {"BACKEND_PYTHON": str(python), "BACKEND_SRC": str(BACKEND)}
    session.chdir(FRONTEND)
    session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    session.run("npm", "test", external=True, env=env)
    session.run("npm", "run", "test:browser", external=True, env=env)


@nox.session(python=PY, tags=["ci"])
def chart(session: nox.Session) -> None:
    """The umbrella chart: helm lint, Kubernetes schemas, policies, values schema, and the
    pods the reconciler builds from it (trial starts)."""
    session.install("-r", "tests/chart/requirements.txt")
    session.install("-e", ".")  # tests/chart/test_trial_pod.py builds pods with reconciler code
    path = f"{_helm_directory(session)}{os.pathsep}{os.environ['PATH']}"
    # The install test needs the real cluster: it runs in the e2e session, after bootstrap.
    session.run(
        "pytest",
        "tests/chart",
        "--ignore=tests/chart/test_install.py",
        *session.posargs,
        env={"PATH": path},
    )


def _test_packages(session: nox.Session, group: str) -> None:
    """The Debian packages a test session needs (tools/system-packages.sh GROUP): CI's,
    never the product's, so bootstrap does not install them."""
    session.run("bash", "tools/system-packages.sh", group, external=True)


def _helm_directory(session: nox.Session) -> str:
    """The directory of a usable ``helm``: the one on PATH at a supported version, else
    one built from source by tools/install-helm.sh, whose progress reaches the terminal
    (only its last stdout line, the directory, is captured)."""
    found = subprocess.run(
        ["bash", "tools/install-helm.sh"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    if found.returncode != 0 or not found.stdout.strip():
        session.error(f"tools/install-helm.sh exited {found.returncode} (see above)")
    return found.stdout.strip().splitlines()[-1]


class _Steps:
    """Numbered, timed steps: one log line when each starts and ends, a summary at the end."""

    def __init__(self, session: nox.Session, total: int) -> None:
        self.session = session
        self.total = total
        self.done: list[tuple[str, float]] = []
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        number = len(self.done) + 1
        self.session.log(f"step {number}/{self.total}: {what}")
        started = time.monotonic()
        yield
        seconds = time.monotonic() - started
        self.done.append((what.split(" (", maxsplit=1)[0], seconds))
        self.session.log(f"step {number}/{self.total} done in {seconds:.0f}s: {what}")

    def summary(self) -> str:
        parts = ", ".join(f"{what} {seconds:.0f}s" for what, seconds in self.done)
        return f"{parts}; total {time.monotonic() - self.started:.0f}s"


def _machine_setup(session: nox.Session, steps: _Steps) -> None:
    """What the product needs on the machine: a Docker engine that answers, the base
    images, Helm. Test-only packages (browser, registry, debootstrap for tests) are
    installed by the test sessions and .ci/run; nothing here needs root unless the
    machine lacks Docker, or the local from-source cluster is chosen (its up.sh installs
    its own packages)."""
    with steps.step("Docker engine (used as it is when `docker info` answers)"):
        session.run("bash", "tools/ensure-docker.sh", external=True)
    with steps.step("base images (pulled; made locally only where no registry answers)"):
        session.run("bash", "tools/base-images/build.sh", external=True)
    with steps.step("Helm (the one on PATH when supported, else built from source)"):
        helm_dir = _helm_directory(session)
        session.log(f"helm: {helm_dir}/helm")
        session.env["PATH"] = f"{helm_dir}{os.pathsep}{os.environ['PATH']}"


def _run_together(session: nox.Session, runs: dict[str, list[str]]) -> None:
    """Runs commands from the session's environment at the same time, each line of their
    output prefixed with its name as it comes; fails naming every command that failed.

    For pytest runs that must be separate processes but spend their time waiting on pods:
    side by side they share the cluster's idle time instead of queueing for it.
    """
    if session.run("python", "-c", "", silent=True) is None:
        return  # --install-only: session.run runs nothing, and neither does this
    env = {**os.environ, **{k: v for k, v in session.env.items() if v is not None}}
    env["PATH"] = f"{session.bin}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    processes = {
        name: subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        for name, command in runs.items()
    }

    def relay(name: str, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()

    relays = [
        threading.Thread(target=relay, args=(name, process), daemon=True)
        for name, process in processes.items()
    ]
    for thread in relays:
        thread.start()
    codes = {name: process.wait() for name, process in processes.items()}
    for thread in relays:
        thread.join()
    failed = [f"{name} (exit {code})" for name, code in codes.items() if code != 0]
    if failed:
        session.error(f"failed: {', '.join(failed)}")


def _daemon_running(session: nox.Session) -> bool:
    found = session.run("lumina-reconcile", "status", "--json", silent=True, success_codes=[0, 2])
    return isinstance(found, str) and '"pid": null' not in found and '"pid"' in found


def _app_location(session: nox.Session) -> dict[str, str]:
    """Where the provider says the app is (``status --json``'s ``cluster``)."""
    found = session.run("lumina-reconcile", "status", "--json", silent=True, success_codes=[0])
    assert isinstance(found, str)
    # Warnings (a skipped plugin) may surround the JSON: silent output has stderr too.
    document, _ = json.JSONDecoder().raw_decode(found[found.index("{") :])
    cluster = document.get("cluster") or {}
    return {str(key): str(value) for key, value in cluster.items()}


def _status_url(session: nox.Session) -> str:
    """The daemon's status page, at the port the settings give it."""
    found = session.run("lumina-reconcile", "status", "--json", silent=True, success_codes=[0])
    assert isinstance(found, str)
    document, _ = json.JSONDecoder().raw_decode(found[found.index("{") :])
    return str((document.get("daemon") or {}).get("status_url") or "http://127.0.0.1:8787/status")


def _wait_for_app(session: nox.Session, url: str, note: str, timeout: float = 300.0) -> None:
    """Until the app answers on ``url`` (frontend and backend Ready): after a cluster
    restart the release is unchanged but its pods are still starting."""
    health = f"{url}/api/health"
    if not health.startswith(("http://", "https://")):
        session.error(f"the cluster provider gave a URL that is not http(s): {url!r}")
    started = time.monotonic()
    said = started
    while True:
        try:
            with urllib.request.urlopen(health, timeout=5) as answer:  # noqa: S310 (checked above)
                if answer.status == 200:
                    waited = time.monotonic() - started
                    session.log(f"the app answers on {health} ({waited:.0f}s)")
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() - started > timeout:
            session.error(
                f"the app did not answer on {health} within {timeout:.0f}s; "
                f"see `lumina-reconcile verify` and `lumina-reconcile diagnose`"
                + (f" ({note})" if note else "")
            )
        if time.monotonic() - said >= 10:
            session.log(f"waiting for the pods to serve ({time.monotonic() - started:.0f}s)")
            said = time.monotonic()
        time.sleep(1)


def _bootstrap(session: nox.Session, *, start_daemon: bool) -> None:
    _install_project(session)
    steps = _Steps(session, total=7 if start_daemon else 6)
    _machine_setup(session, steps)
    with steps.step("cluster (the first build of the local cluster takes long)"):
        session.run("lumina-reconcile", "cluster", "up")
    with steps.step("images, namespace, secrets, chart (one reconcile cycle)"):
        was_running = _daemon_running(session)
        if was_running:
            # One reconciler per repository: the running daemon steps aside for this cycle.
            session.run("lumina-reconcile", "stop")
        session.run("lumina-reconcile", "once")
    with steps.step("the app answering (on the URL the cluster provider gives)"):
        where = _app_location(session)
        if where.get("app_url"):
            _wait_for_app(session, where["app_url"], where.get("app_url_note", ""))
        else:
            session.warn(f"no URL to wait on: {where.get('app_url_note') or 'unknown'}")
    if start_daemon or was_running:
        steps.total += 0 if start_daemon else 1  # a daemon that was running is restarted
        with steps.step("the reconciler daemon"):
            _start_daemon(session)
    session.log(f"bootstrap steps: {steps.summary()}")


def _service_status(session: nox.Session) -> dict[str, object]:
    """``lumina-reconcile service status --json``: a systemd --user manager, a unit."""
    found = session.run(
        "lumina-reconcile", "service", "status", "--json", silent=True, success_codes=[0, 1]
    )
    assert isinstance(found, str)
    document, _ = json.JSONDecoder().raw_decode(found[found.index("{") :])
    return dict(document)


def _start_daemon(session: nox.Session) -> None:
    """Under systemd --user when asked (LUMINA_DAEMON=service) or already installed there;
    else detached, as a process of its own session, offering the service where it exists."""
    choice = os.environ.get("LUMINA_DAEMON", "auto")
    service = _service_status(session)
    if choice == "service" or (choice == "auto" and service.get("unit_file")):
        session.run("lumina-reconcile", "service", "install")
        deadline = time.monotonic() + 60
        while _service_status(session).get("active") != "active":
            if time.monotonic() > deadline:
                session.error(f"the {service['unit']} unit is not active; see `journalctl --user`")
            time.sleep(1)
        session.log(
            f"reconciler daemon: systemd --user unit {service['unit']} (restarted on "
            f"failure), logs: journalctl --user -u {service['unit']}"
        )
        return
    _start_detached(session)
    if service.get("manager"):
        session.log(
            "systemd --user is available: `lumina-reconcile service install` keeps the daemon "
            "up and restarts it on failure (LUMINA_DAEMON=service makes bootstrap do that)"
        )


def _start_detached(session: nox.Session) -> None:
    log_path = ROOT / ".lumina" / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    executable = pathlib.Path(session.virtualenv.bin) / "lumina-reconcile"
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log_file:
        # A session of its own: the daemon outlives nox and ignores its terminal's signals.
        daemon = subprocess.Popen(
            [str(executable), "run"],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # Up means watching: a daemon that dies at start (a taken port, a bad setting) is
    # reported here, not discovered later.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        said = log_path.read_bytes()[offset:].decode("utf-8", "replace")
        if "watching " in said:
            session.log(f"reconciler daemon started detached (PID {daemon.pid}), log: {log_path}")
            return
        if daemon.poll() is not None:
            session.error(f"the reconciler daemon exited ({daemon.returncode}):\n{said[-2000:]}")
        time.sleep(0.5)
    session.error(f"the reconciler daemon did not start watching within 60s; see {log_path}")


@nox.session(python=PY, default=False)
def bootstrap(session: nox.Session) -> None:
    """Bring the whole stack up from nothing and start the reconciler daemon."""
    _bootstrap(session, start_daemon=True)
    where = _app_location(session)
    if where.get("app_url"):
        session.log(f"Lumina Todo: {where['app_url']}")
    else:
        session.log(f"Lumina Todo: {where.get('app_url_note')}")
    session.log(f"status: lumina-reconcile status   (or {_status_url(session)})")


@nox.session(python=PY, default=False)
def cluster(session: nox.Session) -> None:
    """The cluster: nox -s cluster -- up|down|status|logs|wipe (wipe: its state, not the builds)."""
    _install_project(session)
    action = session.posargs[0] if session.posargs else "status"
    if action == "up":
        _machine_setup(session, _Steps(session, total=3))
    session.run("lumina-reconcile", "cluster", action)


@nox.session(python=PY, tags=["ci"])
def e2e(session: nox.Session) -> None:
    """End to end on the real local cluster: first contact, then every module in its own
    environment (namespace, release, NodePort), four at a time, then the exclusive ones."""
    _test_packages(session, "e2e")
    _install_project(session, "test")
    steps = _Steps(session, total=6)
    _machine_setup(session, steps)
    # The nox running this session: the first-contact test runs the README's bootstrap.
    session.env["E2E_NOX_COMMAND"] = f"{sys.executable} -m nox"
    from_empty = os.environ.get("E2E_FROM_EMPTY") == "1"
    with steps.step("first contact" + (" (the cluster wiped first)" if from_empty else "")):
        if from_empty:
            session.run("lumina-reconcile", "cluster", "wipe")
        session.run("pytest", "tests/e2e/test_0_first_contact.py", "-s", *session.posargs)
    # Separate runs: the e2e and the faults/security suites import their helpers from
    # their own conftest modules, which must not share one pytest process.
    side_by_side = [
        "-n",
        "2",
        "--dist",
        "loadfile",
        "-m",
        "not exclusive and not phase_table",
        "--durations=15",
    ]
    with steps.step("e2e modules and faults/security modules, two at a time each, together"):
        _run_together(
            session,
            {
                "e2e": [
                    "pytest",
                    "tests/tools",
                    "tests/cluster",
                    "tests/chart/test_install.py",
                    "tests/e2e",
                    "--ignore=tests/e2e/test_0_first_contact.py",
                    *side_by_side,
                    *session.posargs,
                ],
                "faults": [
                    "pytest",
                    "tests/faults",
                    "tests/security",
                    *side_by_side,
                    *session.posargs,
                ],
            },
        )
    with steps.step("exclusive modules, alone"):
        session.run(
            "pytest",
            "tests/cluster",
            "tests/e2e",
            "--ignore=tests/e2e/test_0_first_contact.py",
            "-m",
            "exclusive",
            "--durations=15",
            *session.posargs,
            success_codes=[0, 5],  # 5: no module is exclusive
        )
        session.run(
            "pytest",
            "tests/faults",
            "tests/security",
            "-m",
            "exclusive",
            "--durations=15",
            *session.posargs,
            success_codes=[0, 5],
        )
    session.log(f"e2e steps: {steps.summary()}")


@nox.session(python=PY, default=False, name="phase-faults")
def phase_faults(session: nox.Session) -> None:
    """SIGTERM and SIGKILL in each phase of a cycle on the real cluster; prints the table."""
    _test_packages(session, "e2e")
    _install_project(session, "test")
    session.run(
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/faults/test_phase_signals.py",
        "-m",
        "phase_table",
        "-s",
        *session.posargs,
    )


@nox.session(python=PY, default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks on the real stack: prints one table, writes .lumina/bench/latest.json."""
    _install_project(session, "test")
    session.install("psutil==7.2.2")
    session.run("python", "-m", "bench.run", *session.posargs)
