"""Password reset by mail, delivered through a real SMTP server (aiosmtpd) on 127.0.0.1,
with SMTP authentication as a hosted mail relay would ask for it."""

from __future__ import annotations

import email
import email.policy
import logging
import queue
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from fastapi.testclient import TestClient

from app.main import create_app
from tests import support

MAIL_USER, MAIL_PASSWORD = "relay-user", "relay-password"
# The test server listens on loopback only, where AUTH without TLS is harmless.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class Inbox:
    """aiosmtpd handler that keeps every delivered message for the test to read."""

    def __init__(self) -> None:
        self.messages: queue.Queue[EmailMessage] = queue.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.put(message)
        return "250 Message accepted for delivery"

    def next(self, timeout: float = 10) -> EmailMessage:
        return self.messages.get(timeout=timeout)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        MAIL_USER.encode(),
        MAIL_PASSWORD.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = support.free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_required=True,  # mail without a valid login is refused
        auth_require_tls=False,  # plain SMTP on loopback only
    )
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def mail_client(tmp_path: Path, inbox: tuple[Inbox, int]) -> Iterator[TestClient]:
    settings = support.make_settings(
        tmp_path,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=inbox[1],
        SMTP_USERNAME=MAIL_USER,
        SMTP_PASSWORD=MAIL_PASSWORD,
        SMTP_FROM="Lumina <no-reply@lumina.test>",
        SMTP_STARTTLS=False,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _login(client: TestClient, password: str) -> int:
    body = {"email": "ann@example.org", "password": password}
    return client.post("/api/auth/login", json=body).status_code


def test_password_reset_flow(mail_client: TestClient, inbox: tuple[Inbox, int]) -> None:
    client, mailbox = mail_client, inbox[0]
    old_session = support.sign_up(client, "ann@example.org")
    assert client.get("/api/auth/me", headers=old_session).status_code == 200  # in use

    requested = client.post("/api/auth/password-reset", json={"email": "Ann@Example.org"})
    assert requested.status_code == 202

    message = mailbox.next()
    assert message["To"] == "ann@example.org"
    assert message["From"] == "Lumina <no-reply@lumina.test>"
    assert "reset" in message["Subject"].lower()
    body = message.get_content()
    codes = [
        line.strip()
        for line in body.splitlines()
        if re.fullmatch(r"\s*[\w-]+(\.[\w-]+){2}\s*", line)
    ]
    assert len(codes) == 1, body
    token = codes[0]

    new_password = "a brand new passphrase"
    confirm = client.post(
        "/api/auth/password-reset/confirm",
        json={"token": token, "new_password": new_password},
    )
    assert confirm.status_code == 204
    assert _login(client, support.PASSWORD) == 401
    assert _login(client, new_password) == 200
    # Sessions from before the reset end with it.
    assert client.get("/api/auth/me", headers=old_session).status_code == 401

    # A reset code works once.
    again = client.post(
        "/api/auth/password-reset/confirm",
        json={"token": token, "new_password": "yet another passphrase"},
    )
    assert again.status_code == 400
    assert _login(client, new_password) == 200


def test_unknown_email_gets_the_same_answer_and_no_mail(
    mail_client: TestClient, inbox: tuple[Inbox, int]
) -> None:
    support.sign_up(mail_client, "ann@example.org")
    known = mail_client.post("/api/auth/password-reset", json={"email": "ann@example.org"})
    unknown = mail_client.post("/api/auth/password-reset", json={"email": "who@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert inbox[0].next()["To"] == "ann@example.org"
    with pytest.raises(queue.Empty):
        inbox[0].next(timeout=1)


def test_a_forged_or_access_token_cannot_reset(
    mail_client: TestClient, inbox: tuple[Inbox, int]
) -> None:
    access = support.sign_up(mail_client, "ann@example.org")["Authorization"].split()[1]
    for token in (access, "forged.token.value"):
        response = mail_client.post(
            "/api/auth/password-reset/confirm",
            json={"token": token, "new_password": "attacker's choice"},
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "Invalid or expired reset token"}
    assert _login(mail_client, support.PASSWORD) == 200


def test_unreachable_mail_server_is_logged_not_leaked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead_port = support.free_port()  # nothing listens here
    settings = support.make_settings(
        tmp_path, SMTP_HOST="127.0.0.1", SMTP_PORT=dead_port, SMTP_STARTTLS=False
    )
    with TestClient(create_app(settings)) as client, caplog.at_level(logging.ERROR):
        support.sign_up(client, "ann@example.org")
        response = client.post("/api/auth/password-reset", json={"email": "ann@example.org"})
    assert response.status_code == 202
    failures = [r.getMessage() for r in caplog.records if r.name == "app.mailing"]
    assert failures and f"127.0.0.1:{dead_port} failed" in failures[0]
    assert "ann@example.org" not in caplog.text


def test_without_smtp_the_feature_is_off_and_says_so(client: TestClient) -> None:
    support.sign_up(client, "ann@example.org")
    for path, body in [
        ("/api/auth/password-reset", {"email": "ann@example.org"}),
        ("/api/auth/password-reset/confirm", {"token": "x", "new_password": "long enough"}),
    ]:
        response = client.post(path, json=body)
        assert response.status_code == 503
        assert response.json() == {"detail": "mail is not configured"}
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json()["mail"] == "off"
