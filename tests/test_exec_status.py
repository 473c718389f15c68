"""How a command run in a pod ended, read from the exec's status channel.

The channel's text is what the API server sends (a ``metav1.Status``); these cases are
the shapes it sends for a success, an exit code, a command that cannot start, and the
empty channel of a connection that closed before the status came.
"""

from __future__ import annotations

import json

import pytest

from reconciler import errors
from reconciler.cluster import kube

EXITED_3 = {
    "status": "Failure",
    "message": "command terminated with non-zero exit code: error executing command "
    "[sh -c exit 3], exit code 3",
    "reason": "NonZeroExitCode",
    "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
}
NOT_STARTED = {
    "status": "Failure",
    "message": 'exec: "nope": executable file not found in $PATH',
}


@pytest.mark.parametrize(
    ("raw", "ended"),
    [
        (json.dumps({"metadata": {}, "status": "Success"}), (0, "")),
        (json.dumps(EXITED_3), (3, "")),
        (json.dumps(NOT_STARTED), (None, NOT_STARTED["message"])),
        ("", None),
        ("   ", None),
        ("{not json", (None, "an unreadable exec status: {not json")),
    ],
)
def test_exit_status_reads_what_the_api_server_sends(
    raw: str, ended: tuple[int | None, str] | None
) -> None:
    assert kube.exit_status(raw) == ended


def test_a_lost_status_is_retried_not_reported_as_a_failed_step() -> None:
    # The pre-upgrade policy re-raises TemporaryError (the cycle is retried) and turns
    # anything else into a refused upgrade that needs the user.
    lost = kube.ExecStatusLostError("running python in pod backend-1: closed", retry_after=5)
    assert isinstance(lost, errors.TemporaryError)
