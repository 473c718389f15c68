"""values.schema.json stops bad values before anything reaches the cluster.

Each bad value must be rejected by both `helm template` and `helm lint`, with
an error that names the offending field, so the user knows what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import HelmRun

# (helm arguments setting the bad value, text the error must contain)
BAD_VALUES = {
    "backend replicas 2": (["--set", "backend.replicas=2"], "/backend/replicas"),
    "backend replicaCount 2": (["--set", "backend.replicaCount=2"], "/backend/replicaCount"),
    "nodePort 80": (["--set", "frontend.service.nodePort=80"], "/frontend/service/nodePort"),
    "nodePort 40000": (["--set", "frontend.service.nodePort=40000"], "/frontend/service/nodePort"),
    "missing tag": (["--set", "backend.image.tag=null"], "tag"),
    "empty tag": (["--set-string", "chatbot.image.tag="], "/chatbot/image/tag"),
    "missing repository": (["--set", "frontend.image.repository=null"], "repository"),
    "cpu lots": (
        ["--set", "backend.resources.requests.cpu=lots"],
        "/backend/resources/requests/cpu",
    ),
    "memory in millibytes": (
        ["--set", "chatbot.resources.limits.memory=512m"],
        "/chatbot/resources/limits/memory",
    ),
    "unknown resource": (["--set", "frontend.resources.limits.gpu=1"], "gpu"),
    "unknown top-level key": (["--set", "fronted.image.tag=abc"], "fronted"),
    "backend made public": (["--set", "backend.service.type=NodePort"], "/backend/service/type"),
    "short grace period": (
        ["--set", "backend.terminationGracePeriodSeconds=5"],
        "/backend/terminationGracePeriodSeconds",
    ),
    "bad pull policy": (
        ["--set", "chatbot.image.pullPolicy=Sometimes"],
        "/chatbot/image/pullPolicy",
    ),
    "no sign-in attempts": (
        ["--set", "backend.config.authAttempts.perClient=0"],
        "/backend/config/authAttempts/perClient",
    ),
    "negative proxy hops": (
        ["--set", "frontend.config.trustedProxyHops=-1"],
        "/frontend/config/trustedProxyHops",
    ),
    "bad model CIDR": (
        ["--set", "networkPolicy.modelEgress.cidr=everywhere"],
        "/networkPolicy/modelEgress/cidr",
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES)
@pytest.mark.parametrize("command", ["template", "lint"])
def test_bad_value_is_rejected_naming_the_field(
    helm: HelmRun, chart: Path, command: str, case: str
) -> None:
    args, field = BAD_VALUES[case]
    release = ["lumina"] if command == "template" else []
    result = helm(command, *release, chart, "--namespace", "lumina", *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"helm {command} accepted {args}:\n{output}"
    marker = (
        "values don't meet the specifications of the schema" if command == "template" else "[ERROR]"
    )
    assert marker in output, output
    assert field in output, f"the error does not name {field!r}:\n{output}"


@pytest.mark.parametrize(
    "args",
    [
        ["--set-string", "backend.image.tag=9f86d081884c7d65"],
        ["--set", "frontend.service.nodePort=32767"],
        [
            "--set",
            "chatbot.resources.requests.cpu=0.25",
            "--set",
            "chatbot.resources.limits.memory=1Gi",
        ],
        ["--set", "backend.replicaCount=1"],
        [
            "--set",
            "backend.config.authAttempts.perClient=500",
            "--set",
            "frontend.config.trustedProxyHops=1",
        ],
        ["--set", "global.imageRegistry=local"],  # global stays open for future shared settings
    ],
    ids=" ".join,
)
def test_good_values_are_accepted(helm: HelmRun, chart: Path, args: list[str]) -> None:
    result = helm("template", "lumina", chart, "--namespace", "lumina", *args)
    assert result.returncode == 0, result.stderr
