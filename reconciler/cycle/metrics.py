"""Prometheus metrics of the reconcile cycle, in a registry of its own.

Who calls it: the cycle records them (:mod:`reconciler.cycle.concluding`,
:mod:`reconciler.cycle.reconciling`, the build action); the daemon's
:mod:`reconciler.daemon.serving` exposes ``/metrics``. They live with the cycle, which
writes them, so the cycle never imports the daemon. A private registry keeps tests and
several daemons in one process apart.
"""

from __future__ import annotations

import prometheus_client


class Metrics:
    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.cycles = prometheus_client.Counter(
            "lumina_cycles", "Reconcile cycles by outcome.", ["outcome"], registry=self.registry
        )
        self.build_seconds = prometheus_client.Histogram(
            "lumina_build_seconds",
            "Image build durations.",
            ["service"],
            buckets=(1, 5, 10, 20, 40, 80, 160, 320, 640),
            registry=self.registry,
        )
        self.deploy_seconds = prometheus_client.Histogram(
            "lumina_deploy_seconds",
            "Helm upgrade and rollout durations.",
            buckets=(1, 5, 10, 20, 40, 80, 160, 320),
            registry=self.registry,
        )
        self.services_rebuilt = prometheus_client.Counter(
            "lumina_services_rebuilt", "Images built.", ["service"], registry=self.registry
        )
        self.builds_skipped = prometheus_client.Counter(
            "lumina_builds_skipped",
            "Services whose image was already deployed or present, so not built.",
            registry=self.registry,
        )
        self.last_success = prometheus_client.Gauge(
            "lumina_last_success_timestamp_seconds",
            "When a cycle last converged.",
            registry=self.registry,
        )
        self.drifted = prometheus_client.Gauge(
            "lumina_drifted_objects",
            "Live objects differing from the release.",
            ["service"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)
