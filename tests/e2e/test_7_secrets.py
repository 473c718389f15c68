"""A rotated secret reaches exactly the pods that read it (issue 14, secrets part).

Rotates ``JWT_SECRET_KEY`` in the workspace's git-ignored ``config/secrets.env`` and
runs one cycle: the backend's pod rolls (its template carries a keyed checksum of its
Secret), the chatbot's and frontend's do not; tokens signed with the old key are
refused, a new sign-in works; a cycle with nothing rotated rolls nothing. The original
key is put back at the end, so sessions made before this test are valid again.
"""

from __future__ import annotations

import base64
import json
import pathlib
import secrets as random_secrets
import uuid
from collections.abc import Iterator

import environments
import httpx
import pytest
from conftest import pod_uids, reconcile, wait_for

from reconciler.cluster import kube

PASSWORD = "correct horse battery staple"
ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace
FRONTEND = ENVIRONMENT.url


def _once(repo: pathlib.Path) -> tuple[int, str]:
    done = reconcile(repo, "once", "--mode", "commit", check=False)
    return done.returncode, done.stdout + done.stderr


def _deployed_jwt(cluster: kube.Kube) -> str:
    secret = cluster.get("v1", "Secret", NAMESPACE, "backend-secrets")
    assert secret is not None, f"no Secret backend-secrets in namespace {NAMESPACE}"
    return base64.b64decode(secret["data"]["JWT_SECRET_KEY"]).decode()


def _signed_in(email: str) -> httpx.Client:
    client = httpx.Client(base_url=FRONTEND, timeout=20)
    account = {"email": email, "password": PASSWORD}
    answers: list[httpx.Response] = []

    def sign_in() -> bool:
        answers.append(client.post("/api/auth/login", json=account))
        return answers[-1].status_code not in (502, 503, 504)

    wait_for(sign_in, 180, "the backend behind the frontend")
    assert answers[-1].status_code == 200, answers[-1].text
    return client


def _uids(cluster: kube.Kube) -> dict[str, set[str]]:
    return {name: pod_uids(cluster, name, NAMESPACE) for name in ("backend", "chatbot", "frontend")}


def _write_jwt(repo: pathlib.Path, value: str) -> None:
    path = repo / "config" / "secrets.env"
    kept = [
        line
        for line in (path.read_text().splitlines() if path.exists() else [])
        if not line.startswith("JWT_SECRET_KEY=")
    ]
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join([*kept, f"JWT_SECRET_KEY={value}"]) + "\n")
    path.chmod(0o600)


@pytest.fixture
def original_key(workspace: pathlib.Path, cluster: kube.Kube) -> Iterator[str]:
    code, output = _once(workspace)
    assert code == 0, output
    original = _deployed_jwt(cluster)
    yield original
    _write_jwt(workspace, original)
    code, output = _once(workspace)
    assert code == 0, output
    assert _deployed_jwt(cluster) == original


def test_a_rotated_jwt_key_rolls_the_backend_only_and_old_tokens_stop_working(
    workspace: pathlib.Path, cluster: kube.Kube, original_key: str
) -> None:
    email = f"e2e-rotate-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=FRONTEND, timeout=20) as client:
        registered = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
    before_rotation = _signed_in(email)
    assert before_rotation.get("/api/todos").status_code == 200
    before = _uids(cluster)

    # Nothing rotated: nothing rolls.
    code, output = _once(workspace)
    assert code == 0 and "nothing-to-do:" in output, output
    assert _uids(cluster) == before

    rotated = random_secrets.token_urlsafe(48)
    _write_jwt(workspace, rotated)
    code, output = _once(workspace)
    assert code == 0, output
    assert "secrets changed: backend-secrets" in output, output
    assert rotated not in output, "a secret value reached the output"
    assert _deployed_jwt(cluster) == rotated
    after = _uids(cluster)
    assert after["backend"].isdisjoint(before["backend"]), "the backend pod did not roll"
    assert after["chatbot"] == before["chatbot"], "the chatbot rolled for a secret it never reads"
    assert after["frontend"] == before["frontend"], "the frontend rolled"

    wait_for(
        lambda: before_rotation.get("/api/todos").status_code == 401,
        60,
        "the old token to be refused",
    )
    fresh = _signed_in(email)
    assert fresh.get("/api/todos").status_code == 200

    state = json.loads((workspace / ".lumina" / "state.json").read_text())
    assert set(state["secret_fingerprints"]) == {"backend-secrets", "chatbot-secrets"}
    assert rotated not in json.dumps(state) and original_key not in json.dumps(state)
    before_rotation.close()
    fresh.close()
