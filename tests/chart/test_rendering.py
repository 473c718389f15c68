"""The chart lints clean, renders, and every object is valid Kubernetes 1.34.

Validation uses the JSON schemas generated from the Kubernetes 1.34 OpenAPI
document, as shipped by kubernetes-validate, in strict mode (unknown fields
are errors, as `kubectl apply` with server-side field validation would say).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import HelmRun, Manifests, Render

KUBERNETES_VERSION = "1.34.0"
NAMESPACE = "lumina"

DEFAULT_OBJECTS = {
    ("NetworkPolicy", "lumina-default-deny"),
    ("NetworkPolicy", "lumina-allow-dns"),
    ("NetworkPolicy", "lumina-health-test"),
    ("NetworkPolicy", "frontend"),
    ("NetworkPolicy", "backend"),
    ("NetworkPolicy", "chatbot"),
    ("ConfigMap", "frontend"),
    ("ConfigMap", "backend"),
    ("ConfigMap", "chatbot"),
    ("PersistentVolumeClaim", "backend-data"),
    ("Service", "frontend"),
    ("Service", "frontend-pods"),
    ("Service", "backend"),
    ("Service", "chatbot"),
    ("Deployment", "frontend"),
    ("Deployment", "backend"),
    ("Deployment", "chatbot"),
    ("Pod", "frontend-test-health"),
    ("Pod", "backend-test-health"),
    ("Pod", "chatbot-test-health"),
}


def assert_lint_clean(helm: HelmRun, chart: Path, *args: str | Path) -> None:
    result = helm("lint", "--strict", chart, "--namespace", NAMESPACE, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"helm lint --strict failed:\n{output}"
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output, output


def test_lint_strict_is_clean_with_defaults(helm: HelmRun, chart: Path) -> None:
    assert_lint_clean(helm, chart)


def test_lint_strict_is_clean_with_overrides(helm: HelmRun, chart: Path, overrides: Path) -> None:
    assert_lint_clean(helm, chart, "--values", overrides)


def test_defaults_render_exactly_the_app(defaults: Manifests) -> None:
    assert defaults.kinds_and_names() == DEFAULT_OBJECTS
    # Nothing lands in whatever namespace kubectl happens to point at.
    for manifest in defaults:
        assert manifest["metadata"]["namespace"] == NAMESPACE, manifest["metadata"]


def test_overrides_add_namespace_and_secrets(overridden: Manifests) -> None:
    assert overridden.kinds_and_names() == DEFAULT_OBJECTS | {
        ("Namespace", NAMESPACE),
        ("Secret", "backend-secrets"),
        ("Secret", "chatbot-secrets"),
    }


def test_each_subchart_renders_on_its_own(helm: HelmRun, chart: Path) -> None:
    # A subchart installed alone (no umbrella globals) must still render.
    for service in ("frontend", "backend", "chatbot"):
        result = helm("template", "lumina", chart / "charts" / service, "--namespace", NAMESPACE)
        assert result.returncode == 0, f"{service}: {result.stderr}"
        assert f"name: {service}\n" in result.stdout


@pytest.mark.parametrize("values", ["defaults", "overrides"])
def test_every_object_is_valid_kubernetes_1_34(
    values: str, render: Render, overrides: Path
) -> None:
    manifests = render() if values == "defaults" else render("--values", overrides)
    errors = []
    for manifest in manifests:
        where = f"{manifest['kind']}/{manifest['metadata']['name']}"
        try:
            validated = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            errors.append(f"{where}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            # An unknown kind/apiVersion is a failure, not something to skip.
            errors.append(f"{where}: {error.message}")
        else:
            assert validated == "1.34", f"{where} was checked against Kubernetes {validated}"
    assert not errors, "\n".join(errors)


def test_kubernetes_validation_catches_a_broken_object(defaults: Manifests) -> None:
    # Proves the check above has teeth: a misspelled field must be rejected.
    deployment = defaults.get("Deployment", "backend")
    broken = {**deployment, "spec": {**deployment["spec"], "replicaz": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
