"""The daemon as a systemd ``--user`` service: a unit that restarts it and logs to the journal.

Who calls it: ``lumina-reconcile service install|uninstall|status``
(:mod:`reconciler.cli.service_commands`), which ``nox -s bootstrap`` uses when asked
(``LUMINA_DAEMON=service``). Where the user has a service manager (current Linux desktops,
WSL 2 with systemd enabled) the unit keeps ``lumina-reconcile run`` up across logins and
restarts it when it fails; its output goes to the journal (``journalctl --user -u NAME``).
Without one (a container, WSL without systemd) nothing is written and the caller starts
the daemon detached instead. The unit is one file per repository under
``$XDG_CONFIG_HOME/systemd/user``; it holds no secret (those stay in
``config/secrets.env``, which the daemon reads itself). Secret-bearing variables of the
installing shell (a webhook URL's token, a registry password) go into an
``EnvironmentFile`` beside it, mode 0600, that the unit names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from reconciler import errors

#: Variables the daemon needs from the installing shell: where the tools and the cluster
#: are. Secret-bearing ones are never written into the unit (a unit file is readable by
#: its owner's processes, shown by ``systemctl cat`` and often backed up), only into its
#: 0600 environment file.
PASSED_ON = ("PATH", "KUBECONFIG", "DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
PASSED_ON_PREFIXES = ("LUMINA_", "MINIKUBE_")
SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "CREDENTIAL")
#: Settings whose value carries a secret although the name does not say so (a Slack-style
#: webhook URL's path is its token).
SECRET_BEARING = frozenset({"LUMINA_NOTIFY_WEBHOOKS"})


def secret_bearing(name: str) -> bool:
    return name in SECRET_BEARING or any(word in name.upper() for word in SECRET_WORDS)


class NoUserManagerError(errors.PermanentError):
    """There is no systemd user manager to hand the daemon to."""


@dataclasses.dataclass(frozen=True)
class Manager:
    """Whether ``systemctl --user`` works here, and if not, why."""

    available: bool
    why: str


def unit_name(repo: pathlib.Path) -> str:
    """``lumina-reconcile-<dir>-<hash of the path>.service``: one per repository."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", repo.name).strip("-") or "repo"
    digest = hashlib.sha256(str(repo).encode()).hexdigest()[:8]
    return f"lumina-reconcile-{slug}-{digest}.service"


def unit_directory(environ: Mapping[str, str] | None = None) -> pathlib.Path:
    environ = os.environ if environ is None else environ
    config = environ.get("XDG_CONFIG_HOME") or str(pathlib.Path.home() / ".config")
    return pathlib.Path(config) / "systemd" / "user"


def _escape(value: str, *, command: bool = False) -> str:
    """One double-quoted word for a unit file: ``%`` is a specifier everywhere, backslash
    and quote are escapes, and in a command line ``$`` expands (so ``$$`` is one ``$``)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + (escaped.replace("$", "$$") if command else escaped) + '"'


def _chosen(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in sorted(environ.items())
        if name in PASSED_ON or name.startswith(PASSED_ON_PREFIXES)
    }


def passed_on(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` the unit itself sets for the daemon (never a secret)."""
    return {name: value for name, value in _chosen(environ).items() if not secret_bearing(name)}


def passed_on_secretly(environ: Mapping[str, str]) -> dict[str, str]:
    """The secret-bearing part of ``environ``: for the 0600 environment file only."""
    return {name: value for name, value in _chosen(environ).items() if secret_bearing(name)}


def environment_file_name(repo: pathlib.Path) -> str:
    return unit_name(repo).removesuffix(".service") + ".env"


def environment_file_text(environ: Mapping[str, str]) -> str:
    """``NAME="value"`` lines; inside double quotes systemd takes ``\\ " $ ` `` escaped."""
    lines = []
    for name, value in passed_on_secretly(environ).items():
        escaped = "".join(f"\\{char}" if char in '\\"$`' else char for char in value)
        lines.append(f'{name}="{escaped}"')
    return "".join(f"{line}\n" for line in lines)


def unit_text(
    repo: pathlib.Path,
    executable: pathlib.Path,
    environ: Mapping[str, str],
    environment_file: pathlib.Path | None = None,
) -> str:
    """The unit file: ``lumina-reconcile run`` for ``repo``, restarted when it fails."""
    environment = "\n".join(
        f"Environment={_escape(f'{name}={value}')}" for name, value in passed_on(environ).items()
    )
    if environment_file is not None:
        environment += f"\nEnvironmentFile={str(environment_file).replace('%', '%%')}"
    return f"""\
# Written by `lumina-reconcile service install`; remove with `lumina-reconcile service uninstall`.
[Unit]
Description=Lumina GitOps reconciler for {str(repo).replace("%", "%%")}
# At most 5 starts in 5 minutes: a daemon that cannot start (a bad setting) stops trying.
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
WorkingDirectory={str(repo).replace("%", "%%")}
ExecStart={_escape(str(executable), command=True)} run --repo {_escape(str(repo), command=True)}
# A clean exit (SIGTERM: build abandoned, upgrade returned, state saved) stays stopped.
Restart=on-failure
RestartSec=10
KillSignal=SIGTERM
TimeoutStopSec=180
StandardOutput=journal
StandardError=journal
SyslogIdentifier=lumina-reconcile
{environment}

[Install]
WantedBy=default.target
"""


def _systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["systemctl", "--user", *args], capture_output=True, text=True, check=False, timeout=60
    )
    if check and done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-500:]
        raise errors.PermanentError(f"systemctl --user {' '.join(args)} failed: {said}")
    return done


def manager() -> Manager:
    """Whether a systemd user manager answers (``systemctl --user show-environment``)."""
    if shutil.which("systemctl") is None:
        return Manager(False, "systemctl is not installed")
    try:
        done = _systemctl("show-environment", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Manager(False, f"systemctl --user does not answer ({exc})")
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return Manager(False, f"no systemd user manager ({said[-1] if said else 'no answer'})")
    return Manager(True, "systemd --user")


def _require() -> None:
    found = manager()
    if not found.available:
        raise NoUserManagerError(
            f"cannot install a user service: {found.why}",
            hint="run the daemon detached instead (nox -s bootstrap does: log in "
            ".lumina/daemon.log), or enable systemd (WSL 2: systemd=true in /etc/wsl.conf)",
        )


def _write_private(path: pathlib.Path, text: str) -> None:
    # Created 0600, and an existing file made 0600 before the secret is written into it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def install(
    repo: pathlib.Path, executable: pathlib.Path, environ: Mapping[str, str]
) -> pathlib.Path:
    """Write the unit, enable it and (re)start it; returns the unit file. Idempotent."""
    _require()
    directory = unit_directory(environ)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / unit_name(repo)
    secrets_path = directory / environment_file_name(repo)
    if passed_on_secretly(environ):
        _write_private(secrets_path, environment_file_text(environ))
        path.write_text(unit_text(repo, executable, environ, secrets_path))
    else:
        secrets_path.unlink(missing_ok=True)
        path.write_text(unit_text(repo, executable, environ))
    _systemctl("daemon-reload")
    _systemctl("enable", path.name)
    _systemctl("restart", path.name)
    return path


def uninstall(repo: pathlib.Path, environ: Mapping[str, str]) -> pathlib.Path | None:
    """Stop and disable the unit and remove its file; the file removed, or None."""
    _require()
    path = unit_directory(environ) / unit_name(repo)
    if not path.exists():
        return None
    _systemctl("disable", "--now", path.name, check=False)
    path.unlink()
    (path.parent / environment_file_name(repo)).unlink(missing_ok=True)
    _systemctl("daemon-reload")
    return path


def status(repo: pathlib.Path, environ: Mapping[str, str]) -> dict[str, object]:
    """Manager, unit file and the unit's state, as one JSON-able document."""
    found = manager()
    name = unit_name(repo)
    path = unit_directory(environ) / name
    document: dict[str, object] = {
        "manager": found.why if found.available else None,
        "why_not": None if found.available else found.why,
        "unit": name,
        "unit_file": str(path) if path.exists() else None,
        "active": None,
    }
    if found.available and path.exists():
        shown = _systemctl(
            "show", name, "--property=ActiveState,SubState,MainPID,NRestarts", check=False
        )
        properties = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
        document["active"] = properties.get("ActiveState")
        document["properties"] = properties
        document["logs"] = f"journalctl --user -u {name}"
    return document


def describe(document: Mapping[str, object]) -> Sequence[str]:
    """Lines for a terminal."""
    if document["why_not"]:
        return [
            f"no user service manager here: {document['why_not']}",
            "the daemon runs detached instead (nox -s bootstrap starts it; "
            "log: .lumina/daemon.log)",
        ]
    if not document["unit_file"]:
        return [f"{document['unit']} is not installed (lumina-reconcile service install)"]
    properties = document.get("properties") or {}
    assert isinstance(properties, dict)
    return [
        f"{document['unit']}: {document['active']} ({properties.get('SubState', '?')}), "
        f"PID {properties.get('MainPID', '?')}, restarts {properties.get('NRestarts', '?')}",
        f"unit file: {document['unit_file']}",
        f"logs: {document['logs']}",
    ]
