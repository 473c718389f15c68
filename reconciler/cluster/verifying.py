"""The seed's verification table, run against the live cluster: one :class:`Check` a row.

Who calls it: ``lumina-reconcile verify`` (:mod:`reconciler.cli.verify_command`) and the
e2e tests. The rows are the seed's "Success Verification" table: pods Running, Services
present, the app answering through its NodePort URL, each service's health from inside
its own pod, the PVC Bound, the Secrets present. The images have no curl, so in-pod
health is fetched with the interpreter the image does have (python, else node), through
:meth:`kube.Kube.exec`. Each row carries the plain ``kubectl`` command that checks the
same by hand. Reading only: nothing here changes the cluster.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from reconciler import errors, services
from reconciler.cluster import kube, pod_commands, rollout

INSTANCE_LABEL = "app.kubernetes.io/instance"
HOOK_ANNOTATION = "helm.sh/hook"
EXEC_TIMEOUT = 30.0


@dataclasses.dataclass(frozen=True)
class Check:
    """One row: what was checked, whether it holds, what was seen, how to check by hand."""

    name: str
    passed: bool
    detail: str
    by_hand: str

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)


#: Fetches a URL from this machine; returns the HTTP status (raises OSError if none).
Fetch = Callable[[str], int]


def fetch_status(url: str) -> int:
    """GET ``url`` with a short timeout; the status code, 4xx/5xx included."""
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (checked above)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _python(url: str) -> list[str]:
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).status)"
    return ["-c", script]


def _node(url: str) -> list[str]:
    script = (
        f"fetch({url!r}).then(r => {{ console.log(r.status); process.exit(r.ok ? 0 : 1) }}, "
        "e => { console.error(String(e)); process.exit(1) })"
    )
    return ["-e", script]


#: Interpreters tried in turn: an image without one fails to start it (not exit 1).
INTERPRETERS: tuple[tuple[str, Callable[[str], list[str]]], ...] = (
    ("python", _python),
    ("python3", _python),
    ("node", _node),
)


def _by_hand(*argv: str) -> str:
    return " ".join(shlex.quote(word) for word in argv)


def _app_pods(pods: Sequence[kube.Object]) -> list[kube.Object]:
    return [
        pod
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
        and HOOK_ANNOTATION not in (pod["metadata"].get("annotations") or {})
    ]


def pods_running(pods: Sequence[kube.Object], namespace: str, names: Sequence[str]) -> Check:
    """Every service has a pod, and each of its pods is Running with every container ready."""
    live = _app_pods(pods)
    seen: list[str] = []
    problems: list[str] = []
    for name in names:
        mine = [
            p for p in live if (p["metadata"].get("labels") or {}).get(rollout.NAME_LABEL) == name
        ]
        if not mine:
            problems.append(f"{name}: no pod")
        for pod in mine:
            phase = pod.get("status", {}).get("phase")
            statuses = pod.get("status", {}).get("containerStatuses") or []
            ready = sum(1 for status in statuses if status.get("ready"))
            text = f"{pod['metadata']['name']} {phase}, {ready}/{len(statuses)} ready"
            good = phase == "Running" and bool(statuses) and ready == len(statuses)
            (seen if good else problems).append(text)
    return Check(
        "pods running",
        not problems,
        "; ".join(problems or seen),
        _by_hand("kubectl", "get", "pods", "-n", namespace),
    )


def services_present(found: Mapping[str, kube.Object | None], namespace: str) -> Check:
    """Each service's Service exists (``found``: by name, None when absent)."""
    seen: list[str] = []
    missing: list[str] = []
    for name, service in found.items():
        if service is None:
            missing.append(name)
            continue
        spec = service.get("spec") or {}
        ports = ", ".join(
            f"{port.get('port')}" + (f"->{port['nodePort']}" if port.get("nodePort") else "")
            for port in spec.get("ports") or []
        )
        seen.append(f"{name} {spec.get('type')} {ports}")
    return Check(
        "services present",
        bool(found) and not missing,
        f"missing: {', '.join(missing)}" if missing else "; ".join(seen),
        _by_hand("kubectl", "get", "svc", "-n", namespace),
    )


def app_answers(app_url: str, note: str, *, fetch: Fetch = fetch_status) -> Check:
    url = f"{app_url}/api/health"
    by_hand = _by_hand("curl", "-fsS", url) if app_url else note
    if not app_url:
        return Check("app answers on its NodePort", False, f"no URL: {note}", by_hand)
    try:
        status = fetch(url)
    except OSError as exc:
        return Check("app answers on its NodePort", False, f"{url}: {exc}", by_hand)
    return Check("app answers on its NodePort", status == 200, f"{url}: HTTP {status}", by_hand)


def health_in_pod(
    cluster: kube.Connection, namespace: str, service: str, probe: services.Probe
) -> Check:
    """GET the service's liveness probe on 127.0.0.1 from inside its own running pod."""
    name = f"{service} health (in its pod)"
    url = f"http://127.0.0.1:{probe.port}{probe.path}"
    first = INTERPRETERS[0]
    by_hand = _by_hand(
        "kubectl", "exec", "-n", namespace, f"deploy/{service}", "--", first[0], *first[1](url)
    )
    pod = pod_commands.running_pod(cluster, namespace, service)
    if pod is None:
        return Check(name, False, f"no running {service} pod", by_hand)
    tried: list[str] = []
    for interpreter, arguments in INTERPRETERS:
        argv = [interpreter, *arguments(url)]
        try:
            done = cluster.exec(namespace, pod.name, pod.container, argv, timeout=EXEC_TIMEOUT)
        except errors.LuminaError as exc:
            # Some API servers refuse the exec itself when the executable is missing.
            tried.append(f"{interpreter} ({exc.message})")
            continue
        said = (done.stdout or done.stderr).strip().splitlines()
        if done.exit_code == 0:
            hand = _by_hand("kubectl", "exec", "-n", namespace, f"deploy/{service}", "--", *argv)
            return Check(name, True, f"{pod.name}: {url} HTTP {said[-1] if said else '?'}", hand)
        if done.exit_code == 1:  # the interpreter ran: the request itself failed
            output = (said[-1] if said else "no output")[-300:]
            return Check(
                name, False, f"{pod.name}: {url} failed ({interpreter}): {output}", by_hand
            )
        tried.append(f"{interpreter} ({done.reason or f'exit {done.exit_code}'})")
    return Check(
        name, False, f"{pod.name}: none of {'; '.join(tried)} could run in the image", by_hand
    )


def claims_bound(claims: Sequence[kube.Object], namespace: str) -> Check:
    """The release's PersistentVolumeClaims (at least one) are all Bound."""
    states = [
        f"{claim['metadata']['name']} {(claim.get('status') or {}).get('phase', 'unknown')}"
        for claim in claims
    ]
    passed = bool(claims) and all(state.endswith(" Bound") for state in states)
    return Check(
        "PVC bound",
        passed,
        "; ".join(states) or "no PersistentVolumeClaim of the release",
        _by_hand("kubectl", "get", "pvc", "-n", namespace),
    )


def declared_secrets(plugins: Sequence[services.ServicePlugin]) -> dict[str, set[str]]:
    """Secret name -> the keys it must hold (required ones), over every plugin."""
    wanted: dict[str, set[str]] = {}
    for plugin in plugins:
        for spec in plugin.secrets:
            keys = wanted.setdefault(spec.secret, set())
            if spec.required:
                keys.add(spec.key)
    return wanted


def secrets_present(
    found: Mapping[str, kube.Object | None], wanted: Mapping[str, set[str]], namespace: str
) -> Check:
    """Every declared Secret exists and holds every required key (values never read out)."""
    seen: list[str] = []
    problems: list[str] = []
    for name, keys in sorted(wanted.items()):
        secret = found.get(name)
        if secret is None:
            problems.append(f"{name} missing")
            continue
        absent = sorted(keys - set((secret.get("data") or {}).keys()))
        if absent:
            problems.append(f"{name} lacks {', '.join(absent)}")
        else:
            seen.append(name)
    return Check(
        "secrets present",
        bool(wanted) and not problems,
        "; ".join(problems or seen) or "no service declares a Secret",
        _by_hand("kubectl", "get", "secrets", "-n", namespace),
    )


def verify(
    cluster: kube.Connection,
    *,
    namespace: str,
    release: str,
    plugins: Sequence[services.ServicePlugin],
    app_url: str,
    app_url_note: str = "",
    fetch: Fetch = fetch_status,
) -> list[Check]:
    """Every row of the table, in the seed's order; an API failure fails its row only."""
    names = [plugin.values_key for plugin in plugins]
    wanted = declared_secrets(plugins)
    release_only = f"{INSTANCE_LABEL}={release}"
    rows: list[tuple[str, Callable[[], Check]]] = [
        (
            "pods running",
            lambda: pods_running(
                cluster.list("v1", "Pod", namespace, label_selector=release_only), namespace, names
            ),
        ),
        (
            "services present",
            lambda: services_present(
                {name: cluster.get("v1", "Service", namespace, name) for name in names}, namespace
            ),
        ),
        ("app answers on its NodePort", lambda: app_answers(app_url, app_url_note, fetch=fetch)),
    ]
    for plugin in plugins:
        rows.append(
            (
                f"{plugin.values_key} health (in its pod)",
                functools.partial(
                    health_in_pod, cluster, namespace, plugin.values_key, plugin.liveness
                ),
            )
        )
    claims = functools.partial(
        cluster.list, "v1", "PersistentVolumeClaim", namespace, label_selector=release_only
    )
    rows.append(("PVC bound", lambda: claims_bound(claims(), namespace)))
    rows.append(
        (
            "secrets present",
            lambda: secrets_present(
                {name: cluster.get("v1", "Secret", namespace, name) for name in wanted},
                wanted,
                namespace,
            ),
        )
    )
    checks: list[Check] = []
    for name, row in rows:
        try:
            checks.append(row())
        except errors.LuminaError as exc:
            checks.append(Check(name, False, f"the cluster API: {exc.message}", ""))
    return checks
