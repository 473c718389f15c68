"""Property-based fuzzing of every operation in /api/openapi.json against the real
server: whatever schemathesis sends, the backend never answers with a 5xx, and what it
answers matches the schema it publishes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from hypothesis import HealthCheck, given, settings
from schemathesis import CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import support


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Server]:
    """The backend with mail on (a real SMTP sink), so the reset routes answer for real
    instead of their documented 503, which the no-5xx check would count."""
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    smtp = Controller(Sink(), hostname="127.0.0.1", port=support.free_port())
    smtp.start()
    env = {
        "DATABASE_URL": f"sqlite:///{workdir / 'data' / 'lumina.db'}",
        "JWT_SECRET_KEY": support.SECRET,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_STARTTLS": "false",
        # Fuzzing is about what each request gets, not about how many one client may send.
        "AUTH_ATTEMPTS_PER_CLIENT": "1000000",
        "AUTH_ATTEMPTS_PER_ACCOUNT": "1000000",
    }
    server = support.start_server(env, workdir / "uvicorn.log")
    yield server
    server.stop()
    smtp.stop()


@pytest.fixture(scope="module")
def auth_headers(live_server: support.Server) -> dict[str, str]:
    with live_server.client() as http:
        headers = support.sign_up(http, "fuzz@example.org")
        # Some todos, so that generated ids sometimes hit a real one.
        for n in range(5):
            http.post("/api/todos", json={"title": f"seed {n}"}, headers=headers)
    return headers


# Schema-valid inputs must get documented answers; invalid ones merely no 5xx.
CHECKS: dict[GenerationMode, list[CheckFunction]] = {
    GenerationMode.POSITIVE: [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ],
    GenerationMode.NEGATIVE: [not_a_server_error],
}


@pytest.mark.parametrize("mode", list(CHECKS), ids=lambda mode: mode.value)
def test_api_never_fails_with_5xx(
    live_server: support.Server, auth_headers: dict[str, str], mode: GenerationMode
) -> None:
    # The schema is loaded from the running server, so it is what clients really see.
    # (Hypothesis strategies, not schemathesis' pytest plugin: the latter reaches into
    # pytest internals that pytest 9 changed.)
    schema = schemathesis.openapi.from_url(f"{live_server.base_url}/api/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the published schema has invalid operations"
    assert len(operations) >= 10, [op.label for op in operations]

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (
            operation.path_parameters or operation.query or operation.body
        ):
            continue  # nothing in the request that could be made invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=40,  # per operation and mode: the module stays well under 2 min
            deadline=None,
            database=None,  # no example database written into the source tree
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=live_server.base_url, headers=auth_headers, checks=CHECKS[mode]
            )

        try:
            call()
        except Exception as exc:
            exc.add_note(f"operation: {operation.label} ({mode.value} inputs)")
            raise


def test_the_server_logged_no_errors(live_server: support.Server) -> None:
    # Runs after the fuzzing in this module: a handled 4xx never logs a traceback.
    assert "Traceback" not in live_server.log()
