"""The Kubernetes API, as plain JSON dicts: the only module that imports ``kubernetes``.

Who calls it: secrets, rollout watching, diagnosis, drift and status, and commands run
in pods (pre-upgrade backups, ``db``). Objects come back
exactly as the API serves them (``kubectl get -o json`` shape), so the logic that reads
them is pure and testable on recorded objects. API failures are translated here: an
unreachable server is a :class:`TemporaryError`, a refusal (403, 422) permanent.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import urllib3.exceptions
import websocket
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import dynamic
from kubernetes import stream as k8s_stream
from kubernetes import watch as k8s_watch
from kubernetes.client import exceptions as k8s_exceptions
from kubernetes.stream.ws_client import ERROR_CHANNEL

from reconciler import errors

Object = dict[str, Any]
FIELD_MANAGER = "lumina-reconcile"


#: seconds one API call (not a watch or a followed log) may take before it fails
REQUEST_TIMEOUT_SECONDS = 30.0
#: seconds a followed log may stay silent before its stream is given up
FOLLOW_READ_TIMEOUT_SECONDS = 24 * 3600.0


class ApiUnavailableError(errors.TemporaryError):
    """The API server does not answer."""


class ApiRefusedError(errors.PermanentError):
    """The API server answered with an error the user must act on."""


def _translate(exc: Exception, doing: str) -> errors.LuminaError:
    if isinstance(exc, k8s_exceptions.ApiException):
        if exc.status in (401, 403):
            return ApiRefusedError(
                f"{doing}: not allowed ({exc.status} {exc.reason})",
                hint="check the kube context's credentials and RBAC",
            )
        if exc.status and exc.status >= 500:
            return ApiUnavailableError(f"{doing}: API server error {exc.status}", retry_after=5)
        return ApiRefusedError(f"{doing}: {exc.status} {exc.reason}: {(exc.body or '')[:300]}")
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
    if isinstance(cause, urllib3.exceptions.TimeoutError):
        return ApiUnavailableError(
            f"{doing}: the API server did not answer in time ({exc})", retry_after=5
        )
    return ApiUnavailableError(f"{doing}: the API server is unreachable ({exc})", retry_after=5)


_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """How a command run in a container ended: ``exit_code`` None when it did not end
    in time (or the API did not say), ``reason`` the API's word when it failed."""

    exit_code: int | None
    stdout: str
    stderr: str
    reason: str = ""


class ExecStatusLostError(ApiUnavailableError):
    """The exec connection closed before the API said how the command ended: it may or
    may not have run, so the cycle is retried rather than the step called failed."""


def exit_status(raw: str) -> tuple[int | None, str] | None:
    """Exit code and reason from an exec's status channel (a ``metav1.Status`` in JSON);
    None when the channel is empty, i.e. the status never arrived."""
    if not raw.strip():
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return None, f"an unreadable exec status: {raw[:200]}"
    if not isinstance(status, dict):
        return None, f"an unreadable exec status: {raw[:200]}"
    if status.get("status") == "Success":
        return 0, ""
    details = status.get("details") or {}
    for cause in details.get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "")), ""
            except ValueError:
                break
    # A command that cannot start (no such binary) fails with a message, no exit code.
    return None, str(status.get("message") or "the command could not be run")


class Connection(Protocol):
    """What the cycle and the cluster helpers it calls need of a cluster connection.

    Declared here, beside :class:`Kube`, not in :mod:`reconciler.cycle.ports`: the
    cluster helpers take it as their argument, and the layers contract keeps them from
    importing the cycle. ``watch`` blocks until ``stop`` is set, as a fake's must.
    """

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> Object | None: ...

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Object]: ...

    def apply(self, body: Object) -> Object: ...

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> None: ...

    def watch(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        on_change: Callable[[], None],
        stop: threading.Event,
        window_seconds: int = 10,
    ) -> None: ...

    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int | None
    ) -> str: ...

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float
    ) -> ExecResult: ...


class Kube:
    """A connection to one cluster."""

    def __init__(
        self,
        kubeconfig: pathlib.Path | None,
        context: str | None,
        *,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        context = context or None  # "" is no context named: the kubeconfig's current one
        self._request_timeout = request_timeout
        try:
            self._api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None, context=context
            )
            self._bound(self._api)
        except (k8s_config.ConfigException, OSError) as exc:
            raise errors.PermanentError(
                f"no usable kubeconfig ({kubeconfig or '~/.kube/config'}, "
                f"context {context}): {exc}",
                hint="start the cluster (nox -s cluster -- up) or set LUMINA_KUBE_CONTEXT",
            ) from exc
        self._core = k8s_client.CoreV1Api(self._api)
        self._apps = k8s_client.AppsV1Api(self._api)
        self._dynamic: dynamic.DynamicClient | None = None
        self._config = (kubeconfig, context)
        self._exec_core: k8s_client.CoreV1Api | None = None

    def _bound(self, api: Any) -> None:
        """Every request of ``api`` that names no timeout of its own (reads, applies,
        discovery) gets this one: a hung API server ends a call with an error that
        says so, never a cycle that hangs in silence. Streams name their own.

        The client passes an unset timeout to urllib3 as "none" (wait forever), which
        overrides any pool default, so the default is put in at its one request method.
        """
        rest = api.rest_client
        unbounded = rest.request
        default = (min(10.0, self._request_timeout), self._request_timeout)

        def bounded(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
            chosen = default if _request_timeout is None else _request_timeout
            return unbounded(*args, _request_timeout=chosen, **kwargs)

        rest.request = bounded

    def _resource(self, api_version: str, kind: str) -> Any:
        if self._dynamic is None:
            try:
                self._dynamic = dynamic.DynamicClient(self._api)  # type: ignore[no-untyped-call]
            except (k8s_exceptions.ApiException, *_NETWORK_ERRORS) as exc:
                raise _translate(exc, "discovering the API") from exc
        return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Object | None:
        try:
            found = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except k8s_exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise _translate(exc, f"reading {kind} {name}") from exc
        except _NETWORK_ERRORS as exc:
            raise _translate(exc, f"reading {kind} {name}") from exc
        result: Object = found.to_dict()
        return result

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Object]:
        try:
            found = self._resource(api_version, kind).get(
                namespace=namespace,
                label_selector=label_selector or None,
                field_selector=field_selector or None,
            )
        except (k8s_exceptions.ApiException, *_NETWORK_ERRORS) as exc:
            raise _translate(exc, f"listing {kind}") from exc
        items: list[Object] = found.to_dict().get("items", [])
        return items

    def apply(self, body: Object) -> Object:
        """Server-side apply of ``body`` as this tool's field manager."""
        kind = str(body["kind"])
        try:
            applied = self._resource(str(body["apiVersion"]), kind).server_side_apply(
                body=body,
                namespace=body["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        except (k8s_exceptions.ApiException, *_NETWORK_ERRORS) as exc:
            # Never include the body: it may be a Secret.
            raise _translate(exc, f"applying {kind} {body['metadata'].get('name')}") from exc
        result: Object = applied.to_dict()
        return result

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> None:
        """Delete one object; one already gone is not an error."""
        options = (
            {} if grace_period_seconds is None else {"grace_period_seconds": grace_period_seconds}
        )
        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace, **options)
        except k8s_exceptions.ApiException as exc:
            if exc.status != 404:
                raise _translate(exc, f"deleting {kind} {name}") from exc
        except _NETWORK_ERRORS as exc:
            raise _translate(exc, f"deleting {kind} {name}") from exc

    def watch(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        on_change: Callable[[], None],
        stop: threading.Event,
        window_seconds: int = 10,
    ) -> None:
        """Call ``on_change`` on every change of the selected Pods or Deployments until
        ``stop`` is set (blocking; run it in a thread of its own).

        Watches in short server-side windows so that a set ``stop`` ends the thread
        within ``window_seconds``; each window starts with the current objects, which
        only means one more ``on_change``. An API blink is retried, never raised: the
        caller judges the rollout on its own reads, and those report errors.
        """
        lister = {
            "Pod": self._core.list_namespaced_pod,
            "Deployment": self._apps.list_namespaced_deployment,
        }[kind]
        live: list[Any] = []
        lock = threading.Lock()

        def interrupt() -> None:
            # The watch thread is blocked in a socket read: a set ``stop`` shuts that
            # socket (Watch.stop), so the thread ends now, not at its window's end. A
            # thread still reading at interpreter exit has aborted ``once`` (SIGABRT).
            stop.wait()
            with lock:
                for watcher in live:
                    watcher.stop()

        threading.Thread(target=interrupt, name=f"{kind.lower()}-watch-stop", daemon=True).start()
        while not stop.is_set():
            watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
            with lock:
                live[:] = [watcher]
            if stop.is_set():
                break
            try:
                for _event in watcher.stream(  # type: ignore[no-untyped-call]
                    lister,
                    namespace,
                    label_selector=label_selector,
                    timeout_seconds=window_seconds,
                    _request_timeout=window_seconds + 5,
                ):
                    on_change()
                    if stop.is_set():
                        watcher.stop()  # type: ignore[no-untyped-call]
                        break
            except (k8s_exceptions.ApiException, *_NETWORK_ERRORS, ValueError):
                stop.wait(1.0)

    def follow_pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int | None
    ) -> Iterator[str]:
        """The container's log lines as it writes them, until it stops (blocking: run it
        in a thread of its own). ``tail_lines`` None starts at the container's first line.
        A container that has not started, or a pod already gone, ends the stream at once.
        """
        options: dict[str, Any] = {"container": container}
        if tail_lines is not None:
            options["tail_lines"] = tail_lines
        watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        try:
            lines = watcher.stream(  # type: ignore[no-untyped-call]
                self._core.read_namespaced_pod_log,
                pod,
                namespace,
                # A quiet container may write nothing for long: a day, not the default
                # (the client refuses None for "no read timeout").
                _request_timeout=(10, FOLLOW_READ_TIMEOUT_SECONDS),
                **options,
            )
            for line in lines:
                yield str(line)
        except k8s_exceptions.ApiException as exc:
            if exc.status in (400, 404):
                return  # waiting to start, or deleted: the pod watch says what comes next
            raise _translate(exc, f"following logs of {pod}") from exc
        except _NETWORK_ERRORS as exc:
            raise _translate(exc, f"following logs of {pod}") from exc

    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int | None
    ) -> str:
        try:
            text: str = self._core.read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                previous=previous,
                tail_lines=lines,
                _request_timeout=10,
            )
        except k8s_exceptions.ApiException:
            return ""  # no previous container yet, or the pod is gone: no log to show
        except _NETWORK_ERRORS as exc:
            raise _translate(exc, f"reading logs of {pod}") from exc
        return text

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float
    ) -> ExecResult:
        """Run ``argv`` in a running container (no stdin, no TTY) and wait for it."""
        if self._exec_core is None:
            # A client of its own: the stream helper swaps its client's transport for
            # a websocket while it runs, which would break other threads' calls.
            kubeconfig, context = self._config
            api = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None, context=context
            )
            self._bound(api)
            self._exec_core = k8s_client.CoreV1Api(api)
        doing = f"running {argv[0]} in pod {pod}"
        try:
            response = k8s_stream.stream(
                self._exec_core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=list(argv),
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
            )
        except (k8s_exceptions.ApiException, *_NETWORK_ERRORS) as exc:
            raise _translate(exc, doing) from exc
        try:
            response.run_forever(timeout=timeout)
            finished = not response.is_open()
            stdout, stderr = response.read_stdout(timeout=0), response.read_stderr(timeout=0)
            status = response.read_channel(ERROR_CHANNEL, timeout=0)
        except (websocket.WebSocketException, *_NETWORK_ERRORS) as exc:
            raise _translate(exc, doing) from exc
        finally:
            response.close()
        if not finished:
            return ExecResult(
                None, stdout or "", stderr or "", f"still running after {timeout:.0f}s"
            )
        ended = exit_status(status or "")
        if ended is None:
            raise ExecStatusLostError(
                f"{doing}: the connection closed before the command reported how it ended",
                retry_after=5,
            )
        code, reason = ended
        return ExecResult(code, stdout or "", stderr or "", reason)

    def can_i(self, verb: str, resource: str, namespace: str, group: str = "") -> bool:
        """SelfSubjectAccessReview: may the current identity ``verb`` ``resource`` here?"""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "resource": resource,
                    "namespace": namespace,
                    "group": group,
                }
            },
        }
        try:
            answer = self._resource("authorization.k8s.io/v1", "SelfSubjectAccessReview").create(
                body=review
            )
        except (k8s_exceptions.ApiException, *_NETWORK_ERRORS) as exc:
            raise _translate(exc, "checking permissions") from exc
        return bool(answer.to_dict().get("status", {}).get("allowed"))

    def version(self) -> str:
        try:
            info = k8s_client.VersionApi(self._api).get_code(_request_timeout=5)
        except (k8s_exceptions.ApiException, *_NETWORK_ERRORS) as exc:
            raise _translate(exc, "reaching the API server") from exc
        return str(info.git_version)
