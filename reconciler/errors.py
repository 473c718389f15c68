"""Typed errors of the reconciler.

Two roots, as in kopf: a :class:`PermanentError` needs the user to change something
(a setting, a plugin, a file) and retrying cannot help; a :class:`TemporaryError`
may go away on its own (an API server restarting) and carries a retry delay.
Every error carries a ``hint``: what the user should do about it, and names the cycle
outcome it ends in (``outcome``, a value of :class:`reconciler.cycle.outcomes.Outcome`)
and whether that failure belongs to the inputs tried (``of_inputs``: the same inputs
are then not retried in a loop) or to the world around them (fixed outside the repo).
"""

from __future__ import annotations


class LuminaError(Exception):
    """Base of every error the reconciler reports to a user."""

    #: the cycle outcome this error ends in
    outcome = "blocked"
    #: whether the failure is the inputs' own (remembered, not retried until they change)
    of_inputs = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class PermanentError(LuminaError):
    """Retrying cannot help until the user changes something."""


class TemporaryError(LuminaError):
    """May succeed when retried after ``retry_after`` seconds."""

    outcome = "retry"

    def __init__(self, message: str, *, hint: str = "", retry_after: float = 5.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class SettingsError(PermanentError):
    """A setting is malformed, unknown, or of the wrong type."""


class PluginError(PermanentError):
    """A plugin failed to load or declares something impossible."""

    def __init__(self, plugin: str, message: str, *, hint: str = "") -> None:
        super().__init__(f"plugin {plugin!r}: {message}", hint=hint)
        self.plugin = plugin


class RepositoryError(PermanentError):
    """The repository is missing, not a git repository, or in an unusable state."""
