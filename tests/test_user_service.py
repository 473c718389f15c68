"""The daemon's systemd --user unit: its text, systemd's own parser on it, and the paths
for machines with and without a user manager.

The unit file is checked by ``systemd-analyze verify`` (the real parser: it prints every
line it cannot take). This machine has systemctl but no user manager, so the install and
uninstall commands run against a stand-in ``systemctl`` on PATH that records its
arguments (``--user`` cannot run here), and the "no systemd" path against a stand-in that
fails as the real one does here ("Failed to connect to bus").
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from reconciler.daemon import user_service

REPO = pathlib.Path("/home/dev/src/lumina gitops")
EXECUTABLE = pathlib.Path("/home/dev/.venv/bin/lumina-reconcile")
ENVIRON = {
    "PATH": "/home/dev/.venv/bin:/usr/local/bin:/usr/bin",
    "KUBECONFIG": "/home/dev/.kube/config",
    "DOCKER_HOST": "unix:///run/user/1000/docker.sock",
    "LUMINA_CLUSTER": "minikube",
    "LUMINA_REGISTRY_PASSWORD": "hunter2",
    "LUMINA_VALUES": '{"frontend": {"note": "100% $HOME"}}',
    "EDITOR": "vim",
}


def test_the_unit_runs_the_daemon_restarts_it_on_failure_and_logs_to_the_journal() -> None:
    text = user_service.unit_text(REPO, EXECUTABLE, ENVIRON)
    lines = text.splitlines()
    assert (
        'ExecStart="/home/dev/.venv/bin/lumina-reconcile" run --repo "/home/dev/src/lumina gitops"'
        in lines
    )
    assert "WorkingDirectory=/home/dev/src/lumina gitops" in lines
    for line in (
        "Restart=on-failure",
        "StandardOutput=journal",
        "StandardError=journal",
        "KillSignal=SIGTERM",
        "WantedBy=default.target",
    ):
        assert line in lines
    assert 'Environment="KUBECONFIG=/home/dev/.kube/config"' in lines
    assert 'Environment="LUMINA_CLUSTER=minikube"' in lines
    # No secret in a unit file, and nothing the daemon does not need.
    assert "hunter2" not in text and "EDITOR" not in text
    # systemd's specifiers (%) are escaped, and quotes; $ expands in commands only.
    assert 'Environment="LUMINA_VALUES={\\"frontend\\": {\\"note\\": \\"100%% $HOME\\"}}"' in lines
    dollar = user_service.unit_text(pathlib.Path("/src/$x"), EXECUTABLE, {})
    assert 'ExecStart="/home/dev/.venv/bin/lumina-reconcile" run --repo "/src/$$x"' in dollar


def test_systemd_parses_every_line_of_the_unit(tmp_path: pathlib.Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) checks the unit file"
    repo = tmp_path / "my repo"
    repo.mkdir()
    unit = tmp_path / user_service.unit_name(repo)
    unit.write_text(user_service.unit_text(repo, pathlib.Path(sys.executable), ENVIRON))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # The same parser does complain about a line it cannot take.
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=sometimes"))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert "restart specifier" in done.stderr


def test_one_unit_per_repository() -> None:
    a = user_service.unit_name(pathlib.Path("/src/a/lumina"))
    b = user_service.unit_name(pathlib.Path("/src/b/lumina"))
    assert a != b and a.startswith("lumina-reconcile-lumina-") and a.endswith(".service")
    assert user_service.unit_name(REPO).startswith("lumina-reconcile-lumina-gitops-")


def _stand_in_systemctl(bin_dir: pathlib.Path, body: str) -> pathlib.Path:
    log = bin_dir / "systemctl.log"
    script = bin_dir / "systemctl"
    script.write_text("#!/bin/sh\n" + f'echo "$@" >> {log}\n' + textwrap.dedent(body))
    script.chmod(0o755)
    return log


def _cli(
    project: pathlib.Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "service", *args, "--repo", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
        timeout=60,
    )


def test_without_a_user_manager_nothing_is_written_and_it_says_so(
    project: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in_systemctl(bin_dir, 'echo "Failed to connect to bus: No medium found" >&2; exit 1\n')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    installed = _cli(project, env, "install")
    assert installed.returncode == 2
    assert "no systemd user manager (Failed to connect to bus" in installed.stderr
    assert "detached" in installed.stderr
    assert not (tmp_path / "config").exists()
    status = _cli(project, env, "status", "--json")
    assert status.returncode == 1
    document = json.loads(status.stdout)
    assert document["manager"] is None and "Failed to connect to bus" in document["why_not"]


def test_without_systemctl_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert user_service.manager() == user_service.Manager(False, "systemctl is not installed")
    with pytest.raises(user_service.NoUserManagerError):
        user_service.install(REPO, EXECUTABLE, {"XDG_CONFIG_HOME": str(tmp_path)})


def test_install_writes_enables_and_restarts_then_uninstall_removes(
    project: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = _stand_in_systemctl(
        bin_dir,
        """
        case "$*" in
          *"show lumina-reconcile-"*)
            printf 'ActiveState=active\\nSubState=running\\nMainPID=4242\\nNRestarts=0\\n' ;;
        esac
        """,
    )
    config_home = tmp_path / "config"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "XDG_CONFIG_HOME": str(config_home)}
    installed = _cli(project, env, "install")
    assert installed.returncode == 0, installed.stderr
    name = user_service.unit_name(project)
    unit = config_home / "systemd" / "user" / name
    assert f"--repo {project}" in unit.read_text().replace('"', "")
    calls = log.read_text().splitlines()
    assert calls == [
        "--user show-environment",
        "--user daemon-reload",
        f"--user enable {name}",
        f"--user restart {name}",
    ]
    status = _cli(project, env, "status")
    assert status.returncode == 0, status.stderr
    assert f"{name}: active (running), PID 4242" in status.stdout
    assert f"journalctl --user -u {name}" in status.stdout
    removed = _cli(project, env, "uninstall")
    assert removed.returncode == 0 and not unit.exists()
    assert log.read_text().splitlines()[-2:] == [
        f"--user disable --now {name}",
        "--user daemon-reload",
    ]


def test_secret_bearing_variables_go_to_a_0600_environment_file_never_the_unit(
    project: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Issue 23: LUMINA_NOTIFY_WEBHOOKS (a token in its path) was written into the unit."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in_systemctl(bin_dir, "")
    config_home = tmp_path / "config"
    hook = "https://hooks.example.com/services/T0/B0/SeCrEt$x"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "XDG_CONFIG_HOME": str(config_home),
        "LUMINA_NOTIFY_WEBHOOKS": hook,
        "LUMINA_REGISTRY_PASSWORD": "hunter2",
    }
    installed = _cli(project, env, "install")
    assert installed.returncode == 0, installed.stderr
    directory = config_home / "systemd" / "user"
    unit = directory / user_service.unit_name(project)
    secrets_file = directory / user_service.environment_file_name(project)
    text = unit.read_text()
    assert "SeCrEt" not in text and "hunter2" not in text
    assert f"EnvironmentFile={secrets_file}" in text.splitlines()
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    # No user manager runs here to start the unit, so a POSIX shell reads the file back:
    # its double-quote escapes (\\ " $ `) are the ones systemd documents for the file.
    read_back = subprocess.run(
        ["sh", "-c", f'set -a; . "{secrets_file}"; printf %s "$LUMINA_NOTIFY_WEBHOOKS"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert read_back.stdout == hook
    removed = _cli(project, env, "uninstall")
    assert removed.returncode == 0 and not unit.exists() and not secrets_file.exists()
