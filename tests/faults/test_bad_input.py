"""Bad input is refused with an error that names the problem, and the cluster is untouched.

Each case feeds the real reconciler one mistake a user can make — chart values the
schema rejects, a missing required secret, a path that is no git repository, awkward
file names in a build context — and checks the message and that the release's
revision did not move (or, for file names that are legal, that the plan and the
deploy handle them).
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import time

import lumina_stack
import pytest

from reconciler import services
from reconciler.cluster import secrets


def _refused(output: str, *expected: str) -> None:
    lumina_stack.count("bad inputs tried")
    for word in expected:
        assert word in output, f"{word!r} not in:\n{output}"
    assert "Traceback" not in output, output
    lumina_stack.count("bad inputs handled cleanly")


def test_values_rejected_by_the_schema_change_nothing(workspace: pathlib.Path) -> None:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    before = lumina_stack.helm_revision()
    settings_file = workspace / "config" / "lumina.toml"
    good = settings_file.read_text()
    # A dotted key: the environment's settings already give values.backend its requests.
    settings_file.write_text(good + "\nvalues.backend.replicaCount = 2\n")
    lumina_stack.change_chart(workspace, "deployed with values the schema rejects")
    code, output = lumina_stack.once(workspace)
    assert code == 1, output
    assert output.startswith("chart-rejected"), output
    _refused(output, "replicaCount", "values")
    assert lumina_stack.helm_revision() == before
    lumina_stack.assert_no_pending_release()

    # Fixing the values (the settings are inputs too) is tried at once, not skipped as
    # "the same failure".
    settings_file.write_text(good)
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    assert lumina_stack.helm_revision() == before + 1


def test_a_missing_required_secret_is_named(tmp_path: pathlib.Path) -> None:
    """No built-in plugin has a required secret without a generator, so a plugin here does."""
    plugin = services.ServicePlugin(
        name=services.ServiceName("mailer"),
        context="services/mailer",
        dockerfile="services/mailer/Dockerfile",
        image="lumina/mailer",
        values_key="mailer",
        liveness=services.Probe("/health", 8080),
        readiness=services.Probe("/ready", 8080),
        secrets=(services.SecretSpec(secret="mailer-secrets", key="MAILER_TOKEN"),),
    )
    source = tmp_path / "secrets.env"
    source.write_text("OTHER=value\n")
    with pytest.raises(secrets.MissingSecretError) as caught:
        secrets.resolve([plugin], source, environ={})
    _refused(str(caught.value), "MAILER_TOKEN", "mailer-secrets", "mailer", str(source))
    assert source.read_text() == "OTHER=value\n", "a refused resolve must not write the source"
    # The same key from the environment satisfies it.
    resolved = secrets.resolve([plugin], source, environ={"MAILER_TOKEN": "t0ken"})
    assert resolved.values == {"mailer-secrets": {"MAILER_TOKEN": "t0ken"}}
    assert "t0ken" not in repr(resolved)


def test_a_path_that_is_not_a_git_repository(tmp_path: pathlib.Path, environment: object) -> None:
    before = lumina_stack.helm_revision()
    plain = tmp_path / "not-a-repo"
    (plain / "config").mkdir(parents=True)
    for command in (("once",), ("plan",), ("run",)):
        result = lumina_stack.reconcile(plain, *command, check=False)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        _refused(result.stderr, "not a git repository", str(plain))
    assert lumina_stack.helm_revision() == before


@pytest.mark.slow
def test_non_utf8_and_very_long_file_names_in_a_build_context(workspace: pathlib.Path) -> None:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    before = lumina_stack.helm_revision()
    app = os.fsencode(workspace / "services/backend/app")
    latin1 = b"caf\xe9-notes.txt"  # Latin-1, not valid UTF-8
    long_name = b"n" * 250 + b".txt"  # near the 255-byte limit of a file name
    for name in (latin1, long_name):
        with open(os.path.join(app, name), "wb") as handle:
            # Unique content, so the image is really built (not found from an earlier run).
            handle.write(b"a file with an awkward name %d\n" % time.time_ns())
    lumina_stack.commit(workspace, "backend: awkward file names in the build context")
    lumina_stack.count("bad inputs tried")

    plan = lumina_stack.reconcile(workspace, "plan", "--mode", "commit", "--json", check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    backend = next(s for s in json.loads(plan.stdout)["services"] if s["name"] == "backend")
    assert backend["rebuild"], backend
    # Names are reported as their exact bytes (Python's surrogateescape for non-UTF-8).
    named = {
        reason.removeprefix("added services/backend/app/").encode("utf-8", "surrogateescape")
        for reason in backend["reasons"]
    }
    assert named == {latin1, long_name}, backend["reasons"]

    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    assert lumina_stack.last_cycle(workspace)["built"] == ["backend"]
    assert lumina_stack.helm_revision() == before + 1
    # The image holds both files under their exact names.
    listing = lumina_stack.kubectl(
        "exec",
        "-n",
        lumina_stack.current().namespace,
        "deploy/backend",
        "--",
        "python",
        "-c",
        "import os;print(sorted(os.listdir(b'/app/app')))",
    ).stdout
    assert repr(latin1) in listing and repr(long_name) in listing, listing
    lumina_stack.count("bad inputs handled cleanly")


def test_a_status_port_already_taken_is_named(workspace: pathlib.Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = lumina_stack.daemon(workspace, env={"LUMINA_STATUS_PORT": str(port)})
        try:
            output, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 2, output
    _refused(output, f"status port {port}", "LUMINA_STATUS_PORT")
