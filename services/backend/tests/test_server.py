"""The real process, as the container runs it: ``uvicorn app.main:app``.

Startup refuses bad configuration with a message naming the problem; SIGTERM ends the
process cleanly with the database closed; data survives a restart.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app import database
from app.settings import ConfigError
from tests import support

APP_UID = APP_GID = 10001  # the image's user (shared contract)
# uvicorn re-raises SIGTERM after a complete graceful shutdown (see support.Server.stop).
CLEAN_EXIT = (0, -signal.SIGTERM)


def test_data_survives_a_restart(server_env: dict[str, str], tmp_path: Path) -> None:
    first = support.start_server(server_env, tmp_path / "first.log")
    with first.client() as http:
        headers = support.sign_up(http, "ann@example.org")
        created = [
            http.post("/api/todos", json={"title": f"persist {n}"}, headers=headers).json()
            for n in range(3)
        ]
        http.patch(f"/api/todos/{created[0]['id']}", json={"done": True}, headers=headers)
    assert first.stop() in CLEAN_EXIT
    assert "database closed" in first.log()

    second = support.start_server(server_env, tmp_path / "second.log")
    try:
        with second.client() as http:
            # A token from before the restart is still good: same key, same user.
            page = http.get("/api/todos", headers=headers).json()
            login = http.post(
                "/api/auth/login", json={"email": "ann@example.org", "password": support.PASSWORD}
            )
    finally:
        assert second.stop() in CLEAN_EXIT
    assert login.status_code == 200
    assert page["total"] == 3
    assert sorted(item["title"] for item in page["items"]) == [f"persist {n}" for n in range(3)]
    assert [item["done"] for item in page["items"] if item["id"] == created[0]["id"]] == [True]


def test_sigterm_stops_cleanly(server: support.Server) -> None:
    with server.client() as http:
        assert http.get("/api/health").json() == {"status": "ok"}
    assert server.stop() in CLEAN_EXIT
    log = server.log()
    assert "Application shutdown complete" in log
    assert "database closed" in log
    assert "Traceback" not in log


def test_sigterm_lets_an_in_flight_write_finish(server_env: dict[str, str], tmp_path: Path) -> None:
    # Another process holds SQLite's write lock, so a POST waits inside the server
    # (busy_timeout) while SIGTERM arrives: it must still complete and be stored.
    env = server_env | {"SQLITE_BUSY_TIMEOUT_MS": "30000"}
    server = support.start_server(env, tmp_path / "uvicorn.log")
    with server.client() as http:
        headers = support.sign_up(http, "ann@example.org")
    db_path = server_env["DATABASE_URL"].removeprefix("sqlite:///")
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=1) as pool, server.client() as http:
            pending = pool.submit(
                http.post, "/api/todos", json={"title": "in flight"}, headers=headers
            )
            time.sleep(2)  # the request is now waiting for the write lock
            assert not pending.done()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1)
            assert server.process.poll() is None, "exited with a request in flight"
            blocker.execute("COMMIT")
            response = pending.result(timeout=30)
    finally:
        blocker.close()
    assert response.status_code == 201
    assert server.stop() in CLEAN_EXIT
    check = sqlite3.connect(db_path)
    try:
        titles = [row[0] for row in check.execute("SELECT title FROM todos")]
    finally:
        check.close()
    assert titles == ["in flight"]


def test_reads_answer_while_a_write_waits_for_another_process(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    # The waiting write must not hold up the server: the other requests go on.
    env = server_env | {"SQLITE_BUSY_TIMEOUT_MS": "30000"}
    server = support.start_server(env, tmp_path / "uvicorn.log")
    with server.client() as http:
        headers = support.sign_up(http, "ann@example.org")
        http.post("/api/todos", json={"title": "before"}, headers=headers)
    db_path = server_env["DATABASE_URL"].removeprefix("sqlite:///")
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=1) as pool, server.client() as http:
            pending = pool.submit(
                http.post, "/api/todos", json={"title": "waiting"}, headers=headers
            )
            time.sleep(1)  # the write is now waiting for the lock
            with server.client(timeout=10) as other:
                listed = other.get("/api/todos", headers=headers)
                health = other.get("/api/health")
            assert not pending.done()
            blocker.execute("COMMIT")
            written = pending.result(timeout=30)
    finally:
        blocker.close()
        server.stop()
    assert health.status_code == 200
    assert [item["title"] for item in listed.json()["items"]] == ["before"]
    assert written.status_code == 201


def _run_to_exit(env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    log_path = tmp_path / "refused.log"
    process = support.launch(env, log_path)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"backend started although it should not have:\n{log_path.read_text()}")
    return code, log_path.read_text()


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_refuses_to_start_without_jwt_secret(
    server_env: dict[str, str], tmp_path: Path, secret: str | None
) -> None:
    env = {k: v for k, v in server_env.items() if k != "JWT_SECRET_KEY"}
    if secret is not None:
        env["JWT_SECRET_KEY"] = secret
    code, log = _run_to_exit(env, tmp_path)
    assert code != 0
    assert "JWT_SECRET_KEY" in log
    # Nothing was created: the refusal comes before the database is touched.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db/lumina", "DATABASE_URL must be a SQLite URL"),
        ("sqlite://", "not an in-memory database"),
        ("sqlite:///:memory:", "not an in-memory database"),
    ],
)
def test_refuses_a_database_it_cannot_keep(tmp_path: Path, url: str, message: str) -> None:
    code, log = _run_to_exit({"DATABASE_URL": url, "JWT_SECRET_KEY": support.SECRET}, tmp_path)
    assert code != 0
    assert message in log


def _as_app_user(action: Callable[[], str]) -> str:
    """Run ``action`` in a child process with the image's UID/GID; returns its result.

    Root passes every permission check, so the check can only be shown by really
    dropping to the unprivileged user, as the container runs.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.setgroups([])
            os.setgid(APP_GID)
            os.setuid(APP_UID)
            result = action()
        except BaseException as exc:
            result = f"{type(exc).__name__}: {exc}"
        os.write(write_end, result.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the app user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="lumina-backend-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def _try_prepare(path: Path) -> Callable[[], str]:
    def action() -> str:
        try:
            database.prepare_database_file(path)
        except ConfigError as exc:
            return f"ConfigError: {exc}"
        return "ok"

    return action


def test_unwritable_data_directory_is_refused_naming_path_and_uid(shared_dir: Path) -> None:
    shared_dir.chmod(0o755)
    data = shared_dir / "data"
    data.mkdir()
    db = data / "lumina.db"
    if os.getuid() == 0:
        # A fresh volume as a provisioner hands it out: root's, not writable for others.
        data.chmod(0o755)
        outcome = _as_app_user(_try_prepare(db))
        who = f"uid {APP_UID}"
    else:
        data.chmod(0o555)
        outcome = _try_prepare(db)()
        who = f"uid {os.getuid()}"
    assert outcome.startswith("ConfigError: "), outcome
    assert str(data) in outcome
    assert who in outcome
    assert "not writable" in outcome


@pytest.mark.skipif(os.getuid() != 0, reason="switching to UID 10001 needs root")
@pytest.mark.parametrize(
    ("group", "mode"),
    [
        # What `fsGroup: 10001` makes of a volume: group 10001, group-writable, setgid.
        pytest.param(APP_GID, 0o2775, id="fsGroup"),
        # A hostPath provisioner ignores fsGroup but hands out world-writable directories.
        pytest.param(0, 0o777, id="hostpath-0777"),
    ],
)
def test_provisioned_volume_gets_a_group_writable_database(
    shared_dir: Path, group: int, mode: int
) -> None:
    shared_dir.chmod(0o755)
    data = shared_dir / "data"
    data.mkdir()
    os.chown(data, 0, group)
    data.chmod(mode)
    db = data / "lumina.db"
    assert _as_app_user(_try_prepare(db)) == "ok"
    info = db.stat()
    assert info.st_uid == APP_UID
    assert info.st_gid == APP_GID
    assert stat.S_IMODE(info.st_mode) == 0o660  # group-writable despite the umask


def test_database_file_is_created_group_writable(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask would otherwise drop group-write
    try:
        database.prepare_database_file(tmp_path / "new" / "lumina.db")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new" / "lumina.db").stat().st_mode) == 0o660
