"""Settings: defaults, then ``config/lumina.toml``, then ``LUMINA_*`` environment variables.

Who calls it: the CLI, once per command, through :func:`load_settings`. Every mistake
(an unknown key, a wrong type, a malformed file) becomes a :class:`SettingsError` that
names the key and where it came from, because a typo in a config file must never be
silently ignored by a tool that deploys.
"""

from __future__ import annotations

import enum
import json
import os
import pathlib
import tomllib
import urllib.parse
from typing import Annotated, Any, ClassVar

import pydantic
import pydantic_settings

from reconciler import errors

ENV_PREFIX = "LUMINA_"
CONFIG_FILE = pathlib.Path("config/lumina.toml")
#: Credentials, not settings: read by :mod:`reconciler.building.registries` from the secrets file or
#: the environment, so they are never part of a settings object that may be shown or saved.
CREDENTIAL_VARIABLES = frozenset({"LUMINA_REGISTRY_USERNAME", "LUMINA_REGISTRY_PASSWORD"})
#: Read by the tools around the reconciler (the local cluster's scripts, bootstrap, the
#: Helm and base-image installers, the tests), not settings: documented where they are
#: read, and never an "unknown setting" (``LUMINA_DAEMON=service nox -s bootstrap``).
TOOL_VARIABLES = frozenset(
    {
        "LUMINA_BASE_IMAGES_HOST_CAS",
        "LUMINA_BASE_IMAGES_PULL",
        "LUMINA_BIN",
        "LUMINA_BUILD_JOBS",
        "LUMINA_CACHE",
        "LUMINA_CACHE_DIR",
        "LUMINA_BENCH_BACKEND_BASELINE",
        "LUMINA_CHART_TEST_TAG",
        "LUMINA_CNI_BIN_DIR",
        "LUMINA_CNI_CACHE_DIR",
        "LUMINA_COREDNS_VERSION",
        "LUMINA_DAEMON",
        "LUMINA_DEBIAN_MIRROR",
        "LUMINA_DOCKERD_LOG",
        "LUMINA_DOCKERD_WAIT",
        "LUMINA_DOCKER_CONTAINERD_LOG",
        "LUMINA_ETCD_VERSION",
        "LUMINA_GOTOOLCHAIN",
        "LUMINA_HELM",
        "LUMINA_HELM_BUILD",
        "LUMINA_HELM_VERSION",
        "LUMINA_KEEP_IMAGES",
        "LUMINA_KIND_CLUSTER",
        "LUMINA_KUBECTL",
        "LUMINA_KUBE_ROUTER_VERSION",
        "LUMINA_MINIKUBE_PROFILE",
        "LUMINA_NODE_NAME",
        "LUMINA_NODE_REGISTRY_PORT",
        "LUMINA_PYTHON",
        "LUMINA_RUN_DIR",
    }
)


class TriggerMode(enum.StrEnum):
    """What the daemon deploys."""

    #: Saved edits in the work tree (the inner loop).
    WORKTREE = "worktree"
    #: Only the committed tree of the tracked branch.
    COMMIT = "commit"


class DriftMode(enum.StrEnum):
    """What the daemon does when live objects differ from the release."""

    WARN = "warn"
    CORRECT = "correct"


class Settings(pydantic_settings.BaseSettings):
    """Every knob of the reconciler, with the defaults a local stack needs."""

    model_config = pydantic_settings.SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    repo: pathlib.Path = pydantic.Field(
        default=pathlib.Path("."), description="Root of the git repository to reconcile."
    )
    namespace: str = pydantic.Field(
        default="lumina", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63
    )
    node_port: int = pydantic.Field(
        default=30080,
        ge=30000,
        le=32767,
        description="The frontend's NodePort, where users reach the app; one per "
        "environment (namespace) of one cluster.",
    )
    release: str = pydantic.Field(
        default="lumina-todo", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=53
    )
    chart: str = pydantic.Field(
        default="helm/lumina-todo", description="Chart path, relative to the repository."
    )
    branch: str = pydantic.Field(default="main", description="Tracked branch (commit mode).")
    mode: TriggerMode = TriggerMode.WORKTREE
    cluster: str = pydantic.Field(
        default="auto", description="Cluster provider: auto, minikube, kind, context, local."
    )
    kube_context: str | None = pydantic.Field(
        default=None, description="Kube context for the `context` provider."
    )
    debounce_seconds: float = pydantic.Field(default=0.4, gt=0, le=60)
    debounce_max_seconds: float = pydantic.Field(default=5.0, gt=0, le=600)
    poll_seconds: float = pydantic.Field(
        default=30.0, gt=0, description="Safety-net poll of git refs in commit mode."
    )
    build_concurrency: int = pydantic.Field(default=2, ge=1, le=16)
    build_timeout_seconds: float = pydantic.Field(default=900.0, gt=0)
    helm_timeout_seconds: float = pydantic.Field(default=300.0, gt=0)
    api_timeout_seconds: float = pydantic.Field(
        default=30.0,
        gt=0,
        le=600,
        description="How long one call to the Kubernetes API (a helm read: twice this) "
        "may go unanswered before the cycle ends saying the API server did not answer.",
    )
    backup_copies_dir: str = pydantic.Field(
        default="",
        description="A directory on this machine (relative to the repository, or "
        "absolute) where every pre-upgrade backup is also copied, checked on arrival; "
        "empty: backups stay on the service's volume only.",
    )
    backup_copies_keep: int = pydantic.Field(
        default=10, ge=1, description="Copies kept in backup_copies_dir, newest first."
    )
    trial_starts: bool = pydantic.Field(
        default=True,
        description="Before an upgrade stops a service's pod, start its new image once on "
        "a copy of its data and refuse the upgrade unless it becomes ready (services "
        "whose plugin declares a trial start: the backend).",
    )
    min_free_disk_mb: int = pydantic.Field(
        default=512,
        ge=0,
        description="Free MiB a cycle needs on the state, spool and Docker filesystems.",
    )
    status_port: int = pydantic.Field(default=8787, ge=1, le=65535)
    state_dir: str = pydantic.Field(
        default=".lumina", description="Daemon state, relative to the repository."
    )
    secrets_file: str = pydantic.Field(
        default="config/secrets.env", description="Git-ignored source of secret values."
    )
    registry: str | None = pydantic.Field(
        default=None,
        # host[:port][/path]: what the Docker engine and containerd accept before a
        # repository name, lower case as the distribution spec requires.
        pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._/-][a-z0-9]+)*)?/?$",
        description="host:port/prefix images are pushed to and pulled from; none = "
        "built images are loaded into the cluster's nodes.",
    )
    drift: DriftMode = DriftMode.WARN
    drift_ignore: list[str] = pydantic.Field(
        default_factory=list,
        description="Fields others own (replicas, image, env, resources): never drift.",
    )
    drift_interval_seconds: float = pydantic.Field(default=60.0, gt=0)
    values: dict[str, Any] = pydantic.Field(
        default_factory=dict,
        description="Extra chart values (never secrets); image values are set by the reconciler.",
    )
    notify_webhooks: Annotated[list[pydantic.HttpUrl], pydantic_settings.NoDecode] = pydantic.Field(
        default_factory=list,
        description="URLs a JSON notification is POSTed to after each cycle worth "
        "hearing about (Slack-compatible `text`); in the environment, comma-separated.",
    )

    known_keys: ClassVar[frozenset[str]]

    @pydantic.field_validator("notify_webhooks", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        """``LUMINA_NOTIFY_WEBHOOKS=https://a/x,https://b/y`` (or a JSON list)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.replace(" ", ",").split(",") if part]
        return value

    @pydantic.model_validator(mode="after")
    def _debounce_window_fits(self) -> Settings:
        if self.debounce_max_seconds < self.debounce_seconds:
            raise ValueError("debounce_max_seconds must be >= debounce_seconds")
        return self

    def repo_path(self, relative: str) -> pathlib.Path:
        """A path given relative to the repository, made absolute."""
        return (self.repo / relative).resolve()


Settings.known_keys = frozenset(Settings.model_fields)


def _read_config_file(path: pathlib.Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        # Parse once with tomllib for a precise syntax error, then let
        # pydantic-settings' own TOML source produce the values.
        tomllib.loads(path.read_text(encoding="utf-8"))
        data = pydantic_settings.TomlConfigSettingsSource(Settings, toml_file=path)()
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise errors.SettingsError(
            f"{path}: not valid TOML: {exc}", hint="fix the syntax, or delete the file"
        ) from exc
    except OSError as exc:
        raise errors.SettingsError(f"{path}: cannot be read: {exc.strerror}") from exc
    unknown = sorted(set(data) - Settings.known_keys)
    if unknown:
        raise errors.SettingsError(
            f"{path}: unknown setting {unknown[0]!r}",
            hint=f"known settings: {', '.join(sorted(Settings.known_keys))}",
        )
    return dict(data)


def _read_environment() -> dict[str, Any]:
    unknown = sorted(
        name
        for name in os.environ
        if name.startswith(ENV_PREFIX)
        and name[len(ENV_PREFIX) :].lower() not in Settings.known_keys
        and name not in CREDENTIAL_VARIABLES
        and name not in TOOL_VARIABLES
    )
    if unknown:
        known = ", ".join(ENV_PREFIX + key.upper() for key in sorted(Settings.known_keys))
        raise errors.SettingsError(
            f"environment: unknown setting {unknown[0]}", hint=f"known settings: {known}"
        )
    try:
        return dict(pydantic_settings.EnvSettingsSource(Settings)())
    except pydantic_settings.SettingsError as exc:
        # pydantic-settings says which field, not which variable or what it expects.
        field = str(exc).split('"')[1] if str(exc).count('"') >= 2 else "?"
        raise errors.SettingsError(
            f"environment: {ENV_PREFIX}{field.upper()} is not valid JSON",
            hint=f"give {ENV_PREFIX}{field.upper()} as JSON, e.g. "
            + (
                f"{ENV_PREFIX}DRIFT_IGNORE='[\"replicas\"]'"
                if field == "drift_ignore"
                else f'{ENV_PREFIX}VALUES=\'{{"backend": {{"replicaCount": 1}}}}\''
                if field == "values"
                else "a JSON list or object"
            ),
        ) from exc


def shown_url(url: object) -> str:
    """A webhook URL as messages and logs may show it: scheme and host, never userinfo,
    path or query (a Slack-style URL's token is its path)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
        port = parts.port
    except ValueError:
        return "<a URL that cannot be read, not shown: it may hold a token>"
    if not parts.scheme or not parts.hostname:
        return "<a URL without scheme or host, not shown: it may hold a token>"
    return f"{parts.scheme}://{parts.hostname}{f':{port}' if port else ''}/…"


def _shown_input(top: str, value: object) -> str:
    if top != "notify_webhooks":
        return repr(value)
    if isinstance(value, list):
        return repr([shown_url(item) for item in value])
    if isinstance(value, str) and "," not in value and not value.lstrip().startswith("["):
        return repr(shown_url(value))
    return "<webhook URLs, not shown: they may hold tokens>"


def load_settings(
    repo: pathlib.Path | None = None, *, overrides: dict[str, Any] | None = None
) -> Settings:
    """Settings for ``repo`` (default: ``LUMINA_REPO`` or the current directory).

    Precedence, lowest first: defaults, ``<repo>/config/lumina.toml``, ``LUMINA_*``
    environment variables, ``overrides`` (command-line flags). The sources are read
    with pydantic-settings and validated here in one step, so an error can say which
    source a bad value came from.
    """
    env_values = _read_environment()
    root = pathlib.Path(repo or env_values.get("repo") or ".").resolve()
    config_path = root / CONFIG_FILE
    file_values = _read_config_file(config_path)
    merged: dict[str, Any] = {**file_values, **env_values, **(overrides or {}), "repo": root}
    try:
        return Settings.model_validate(merged)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        top = str(first["loc"][0]) if first["loc"] else key  # a list's item: its setting
        if top in (overrides or {}):
            origin = f"--{top.replace('_', '-')}"
        elif top in env_values:
            origin = f"{ENV_PREFIX}{top.upper()}" + key[len(top) :]
        elif top in file_values:
            origin = f"{config_path}: {key}"
        else:
            origin = key
        raise errors.SettingsError(
            f"bad setting {origin}: {first['msg']} (got {_shown_input(top, first.get('input'))})"
        ) from exc
