"""No secret value leaves the Kubernetes Secret: not git, logs, state, ConfigMaps, Helm.

A clone gets recognisable random test values for ``JWT_SECRET_KEY`` and
``OPENAI_API_KEY`` in its git-ignored ``config/secrets.env`` and deploys them with a
chart-only commit (no pod is rolled, so the running backend keeps signing with the
real key). Then every place a value could leak to is scanned: the clone's git history,
everything the reconciler printed (a converged cycle and a rejected one), its
``.lumina/`` state, the namespace's ConfigMaps, the release's values and manifest,
``status --json`` and ``diagnose``. Only the Secrets may hold the values. The original
values are put back before the test ends.
"""

from __future__ import annotations

import base64
import json
import pathlib
import secrets

import environments
import lumina_stack
from lumina_stack import RELEASE

ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace


def _secret_data(name: str) -> dict[str, str]:
    found = lumina_stack.kubectl("get", "secret", name, "-n", NAMESPACE, "-o", "json").stdout
    data = json.loads(found).get("data") or {}
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_secret_values_reach_only_the_kubernetes_secrets(workspace: pathlib.Path) -> None:
    # A fresh checkout has no secrets file: the release's generated JWT key lives only
    # in the cluster, so the value to put back is read from there.
    local_source = workspace / "config" / "secrets.env"
    original = local_source.read_text() if local_source.exists() else ""
    real_jwt = lumina_stack.deployed_secret("backend-secrets", "JWT_SECRET_KEY")
    jwt_value = "lumina-test-jwt-" + secrets.token_hex(24)
    openai_value = "sk-lumina-test-" + secrets.token_hex(24)
    needles = (jwt_value, openai_value)
    kept = [
        line
        for line in original.splitlines()
        if line.split("=", 1)[0].strip() not in ("JWT_SECRET_KEY", "OPENAI_API_KEY")
    ]
    secrets_file = workspace / "config" / "secrets.env"
    secrets_file.write_text(
        "\n".join([*kept, f"JWT_SECRET_KEY={jwt_value}", f"OPENAI_API_KEY={openai_value}"]) + "\n"
    )
    before = lumina_stack.helm_revision()
    base = lumina_stack.run("git", "rev-parse", "HEAD", cwd=workspace).stdout.strip()
    outputs: list[tuple[str, str]] = []
    try:
        lumina_stack.change_chart(workspace, "secret scan")
        deployed = lumina_stack.reconcile(
            workspace, "once", "--mode", "commit", "--verbose", check=False
        )
        output = deployed.stdout + deployed.stderr
        outputs.append(("once output", output))
        assert deployed.returncode == 0, output
        assert lumina_stack.helm_revision() == before + 1

        # The Kubernetes Secrets do hold the values: the scan below is not vacuous.
        assert _secret_data("backend-secrets")["JWT_SECRET_KEY"] == jwt_value
        assert _secret_data("chatbot-secrets")["OPENAI_API_KEY"] == openai_value

        # An error path too: values the chart's schema rejects, after secrets were read.
        lumina_stack.change_chart(workspace, "secret scan, rejected")
        rejected = lumina_stack.reconcile(
            workspace,
            "once",
            "--mode",
            "commit",
            "--verbose",
            check=False,
            env={"LUMINA_VALUES": json.dumps({"backend": {"replicaCount": 2}})},
        )
        outputs.append(("rejected once output", rejected.stdout + rejected.stderr))
        assert rejected.returncode == 1, rejected.stdout + rejected.stderr

        for command in (("status", "--json"), ("diagnose",), ("diagnose", "--json")):
            shown = lumina_stack.reconcile(workspace, *command, check=False)
            outputs.append((" ".join(command), shown.stdout + shown.stderr))
        git_log = lumina_stack.run(
            "git", "log", "-p", "--all", "--format=%H %an %s%n%b", cwd=workspace
        ).stdout
        places = [
            *outputs,
            ("git history of the clone", git_log),
            *lumina_stack.files_text(workspace / ".lumina"),
            (
                "ConfigMaps in lumina",
                lumina_stack.kubectl("get", "cm", "-n", NAMESPACE, "-o", "yaml").stdout,
            ),
            (
                "helm values",
                lumina_stack.helm("get", "values", RELEASE, "-n", NAMESPACE, "-a").stdout,
            ),
            (
                "helm manifest",
                lumina_stack.helm("get", "manifest", RELEASE, "-n", NAMESPACE).stdout,
            ),
            (
                "Deployments in lumina",
                lumina_stack.kubectl("get", "deploy", "-n", NAMESPACE, "-o", "yaml").stdout,
            ),
        ]
        assert len(places) >= 10
        leaks = lumina_stack.scan(places, needles)
        lumina_stack.count("attacks tried", len(places))
        lumina_stack.count("attacks denied", len(places) - len(leaks))
        assert not leaks, leaks
    finally:
        # Put the real values back (the running backend signs with the real JWT key)
        # and the chart as it was: a revert commit is one more upgrade, which applies
        # the Secrets from the original source.
        secrets_file.write_text("\n".join([*kept, f"JWT_SECRET_KEY={real_jwt}"]) + "\n")
        lumina_stack.run("git", "revert", "--no-edit", f"{base}..HEAD", cwd=workspace)
        code, output = lumina_stack.once(workspace)
        assert code == 0, output
    assert _secret_data("backend-secrets")["JWT_SECRET_KEY"] == real_jwt
    assert openai_value not in _secret_data("chatbot-secrets").values()
