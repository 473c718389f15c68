"""Before an upgrade restarts a service: run its plugin's pre-upgrade hook in the old pod.

Who calls it: the cycle's upgrade action (:mod:`reconciler.cycle.actions.upgrade`), after
the pre-flight checks and before anything in the cluster changes. :func:`restarting`
(pure) tells from the rendered chart and the deployed release which Deployments the
upgrade will roll — a new image or a changed config checksum both change the pod
template. :func:`run` applies
the policy, the same for every plugin:

* no running pod of the service (a first install, or a pod that is crashing): the hook
  is skipped with one log line and the upgrade goes ahead — there is nothing live to
  protect, or no way to reach it, and refusing would block the fix;
* the hook succeeds: its line is logged (for the backend, the backup file's name);
* the hook fails: :class:`PreUpgradeRefusedError`, the upgrade does not start and the
  running release keeps serving.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler import errors, services
from reconciler.cluster import kube, pod_commands

log = logging.getLogger("lumina.pre_upgrade")


class PreUpgradeRefusedError(errors.PermanentError):
    """A pre-upgrade hook failed in the running pod, so the upgrade was not started."""

    def __init__(self, service: str, pod: str, problem: str) -> None:
        super().__init__(
            f"upgrade refused: the pre-upgrade step of {service} failed in pod {pod}: {problem}",
            hint=f"the running release is untouched; fix what the step reports (see "
            f"`lumina-reconcile diagnose {service}`), then reconcile again",
        )
        self.service = service
        self.pod = pod
        self.problem = problem


def _templates(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        str(obj["metadata"]["name"]): obj.get("spec", {}).get("template")
        for obj in objects
        if obj.get("kind") == "Deployment" and obj.get("metadata", {}).get("name")
    }


def restarting(
    rendered: Iterable[Mapping[str, Any]], deployed: Iterable[Mapping[str, Any]]
) -> set[str]:
    """Names of the Deployments whose pods the upgrade replaces (or creates)."""
    before = _templates(deployed)
    return {
        name
        for name, template in _templates(rendered).items()
        if name not in before or before[name] != template
    }


def _image(values: Mapping[str, Any], key: str) -> str:
    image = (values.get(key) or {}).get("image") or {}
    return f"{image.get('repository', '')}:{image.get('tag', '')}"


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What the pre-upgrade hooks did before one upgrade."""

    #: one line per hook that ran, for the cycle's message
    notes: tuple[str, ...] = ()
    #: service name -> the backup its hook made (a path in its pod)
    backups: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: service name -> the pod that served when the hooks ran (the trial's node)
    serving: Mapping[str, str] = dataclasses.field(default_factory=dict)


def run(
    cluster: kube.Connection,
    plugins: Sequence[services.ServicePlugin],
    namespace: str,
    *,
    restarting: set[str],
    revision: int | None,
    values: Mapping[str, Any],
) -> Prepared:
    """Run the hooks of the plugins whose pods the upgrade restarts; what each did."""
    done: list[str] = []
    backups: dict[str, str] = {}
    serving: dict[str, str] = {}
    for plugin in plugins:
        if plugin.values_key not in restarting:
            continue
        if plugin.pre_upgrade is None and plugin.trial_start is None:
            continue
        pod = pod_commands.running_pod(cluster, namespace, plugin.values_key)
        if pod is None:
            log.info(
                "pre-upgrade %s: no running %s pod in %s (first install?), nothing to run "
                "before this upgrade",
                plugin.name,
                plugin.name,
                namespace,
            )
            continue
        serving[plugin.name] = pod.name
        if plugin.pre_upgrade is None:
            continue
        upgrading = services.UpgradingService(
            name=plugin.name,
            namespace=namespace,
            pod=pod.name,
            revision=revision,
            image=_image(values, plugin.values_key),
            run=pod_commands.bind(cluster, namespace, pod),
        )
        log.info("pre-upgrade %s: running its hook in %s", plugin.name, pod.name)
        try:
            said = plugin.pre_upgrade(upgrading)
        except errors.TemporaryError:
            raise  # the API server blinked: the cycle is retried, the hook with it
        except Exception as exc:  # a plugin's hook may raise anything
            raise PreUpgradeRefusedError(plugin.name, pod.name, str(exc)) from exc
        if isinstance(said, services.Prepared):
            if said.backup:
                backups[plugin.name] = said.backup
            said = said.said
        log.info("pre-upgrade %s: %s", plugin.name, said)
        done.append(f"{plugin.name}: {said}")
    return Prepared(tuple(done), backups, serving)
