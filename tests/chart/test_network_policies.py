"""Who may talk to whom, computed from the rendered NetworkPolicies.

Rather than matching YAML shapes, the tests evaluate the policies the way a
NetworkPolicy-enforcing CNI does (a pod selected by any policy of a type is
isolated for that direction; allowed traffic is the union of the rules) and
assert the connectivity the app needs, and nothing more.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Manifests

NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "lumina"}


@dataclass(frozen=True, eq=False)  # identity: endpoints are used as set members
class Endpoint:
    """A traffic source or destination: a pod in some namespace, or an outside address."""

    name: str
    pod_labels: dict[str, str] = field(default_factory=dict)
    # None: not a pod in the cluster (an address on the internet, a NodePort client).
    namespace_labels: dict[str, str] | None = None
    ip: str = "203.0.113.7"

    @property
    def in_release_namespace(self) -> bool:
        return self.namespace_labels == NAMESPACE_LABELS


def pod(service: str) -> Endpoint:
    labels = {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": "lumina"}
    return Endpoint(service, labels, NAMESPACE_LABELS, ip="10.244.0.10")


FRONTEND, BACKEND, CHATBOT = pod("frontend"), pod("backend"), pod("chatbot")
HELM_TEST = pod("lumina-health-test")
STRANGER = Endpoint("stranger pod", {"app": "debug"}, NAMESPACE_LABELS, ip="10.244.0.99")
OTHER_NAMESPACE = Endpoint(
    "pod elsewhere", {"app": "x"}, {"kubernetes.io/metadata.name": "default"}, ip="10.244.1.5"
)
COREDNS = Endpoint(
    "coredns",
    {"k8s-app": "kube-dns"},
    {"kubernetes.io/metadata.name": "kube-system"},
    ip="10.244.0.2",
)
INTERNET = Endpoint("internet", ip="203.0.113.7")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if set(selector) - {"matchLabels"}:
        raise AssertionError(f"evaluator does not understand selector {selector}")
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def peer_matches(peer: dict[str, Any], endpoint: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(endpoint.ip)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if endpoint.namespace_labels is None:
        return False
    if "namespaceSelector" in peer:
        namespace_ok = selects(peer["namespaceSelector"], endpoint.namespace_labels)
    else:
        namespace_ok = endpoint.in_release_namespace
    return namespace_ok and selects(peer.get("podSelector", {}), endpoint.pod_labels)


def rule_allows(
    rule: dict[str, Any], peers_key: str, other: Endpoint, port: int, protocol: str
) -> bool:
    ports = rule.get("ports")
    if ports and not any(
        p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports
    ):
        return False
    peers = rule.get(peers_key)
    return not peers or any(peer_matches(peer, other) for peer in peers)


def direction_allows(
    policies: list[dict[str, Any]],
    direction: str,
    subject: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
) -> bool:
    if not subject.in_release_namespace:
        return True  # the chart's policies cannot restrict pods elsewhere
    relevant = [
        p["spec"]
        for p in policies
        if direction in p["spec"]["policyTypes"]
        and selects(p["spec"]["podSelector"], subject.pod_labels)
    ]
    if not relevant:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    return any(
        rule_allows(rule, peers_key, other, port, protocol)
        for spec in relevant
        for rule in spec.get(key) or []
    )


def connects(
    manifests: Manifests, source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    policies = manifests.of_kind("NetworkPolicy")
    return direction_allows(
        policies, "Egress", source, destination, port, protocol
    ) and direction_allows(policies, "Ingress", destination, source, port, protocol)


ALLOWED = [
    (INTERNET, FRONTEND, 3000),  # NodePort clients
    (OTHER_NAMESPACE, FRONTEND, 3000),
    (FRONTEND, BACKEND, 8000),
    (FRONTEND, CHATBOT, 8001),
    (CHATBOT, BACKEND, 8000),
    (CHATBOT, INTERNET, 443),  # the model endpoint
    (HELM_TEST, FRONTEND, 3000),
    (HELM_TEST, BACKEND, 8000),
    (HELM_TEST, CHATBOT, 8001),
]
DENIED = [
    (INTERNET, BACKEND, 8000),
    (INTERNET, CHATBOT, 8001),
    (STRANGER, BACKEND, 8000),
    (OTHER_NAMESPACE, BACKEND, 8000),
    (STRANGER, CHATBOT, 8001),
    (BACKEND, CHATBOT, 8001),
    (BACKEND, FRONTEND, 3000),
    (CHATBOT, FRONTEND, 3000),
    (INTERNET, FRONTEND, 22),
    (FRONTEND, BACKEND, 22),
    (FRONTEND, INTERNET, 443),
    (BACKEND, INTERNET, 443),
    (BACKEND, INTERNET, 587),  # no SMTP host configured: no mail egress
    (CHATBOT, INTERNET, 80),
    (HELM_TEST, INTERNET, 443),
    (STRANGER, INTERNET, 443),  # default deny covers every pod of the namespace
]


@pytest.mark.parametrize(
    ("source", "destination", "port"), ALLOWED, ids=lambda v: getattr(v, "name", v)
)
def test_needed_traffic_is_allowed(
    defaults: Manifests, source: Endpoint, destination: Endpoint, port: int
) -> None:
    assert connects(defaults, source, destination, port)


@pytest.mark.parametrize(
    ("source", "destination", "port"), DENIED, ids=lambda v: getattr(v, "name", v)
)
def test_other_traffic_is_denied(
    defaults: Manifests, source: Endpoint, destination: Endpoint, port: int
) -> None:
    assert not connects(defaults, source, destination, port)


CALLERS = [FRONTEND, BACKEND, CHATBOT, HELM_TEST, STRANGER, OTHER_NAMESPACE, INTERNET]
SERVICE_PORTS = {FRONTEND: 3000, BACKEND: 8000, CHATBOT: 8001}


@pytest.mark.parametrize(
    ("service", "admitted"),
    [
        (FRONTEND, set(CALLERS)),
        (BACKEND, {FRONTEND, CHATBOT, HELM_TEST}),
        (CHATBOT, {FRONTEND, HELM_TEST}),
    ],
    ids=lambda v: getattr(v, "name", "admitted"),
)
def test_ingress_alone_admits_exactly_the_intended_callers(
    defaults: Manifests, service: Endpoint, admitted: set[Endpoint]
) -> None:
    # Checked without the callers' egress rules, so each layer holds on its own.
    policies = defaults.of_kind("NetworkPolicy")
    port = SERVICE_PORTS[service]
    got = {c for c in CALLERS if direction_allows(policies, "Ingress", service, c, port, "TCP")}
    assert {c.name for c in got} == {c.name for c in admitted}


@pytest.mark.parametrize(
    ("source", "reachable"),
    [
        (FRONTEND, {BACKEND, CHATBOT}),
        (BACKEND, set()),
        (CHATBOT, {BACKEND, INTERNET}),
        (HELM_TEST, {FRONTEND, BACKEND, CHATBOT}),
        (STRANGER, set()),
    ],
    ids=lambda v: getattr(v, "name", "reachable"),
)
def test_egress_alone_reaches_exactly_the_intended_targets(
    defaults: Manifests, source: Endpoint, reachable: set[Endpoint]
) -> None:
    policies = defaults.of_kind("NetworkPolicy")
    targets = {**SERVICE_PORTS, INTERNET: 443}
    got = {
        target
        for target, port in targets.items()
        if direction_allows(policies, "Egress", source, target, port, "TCP")
    }
    assert {t.name for t in got} == {t.name for t in reachable}


@pytest.mark.parametrize(
    "source", [FRONTEND, BACKEND, CHATBOT, HELM_TEST, STRANGER], ids=lambda e: e.name
)
def test_every_pod_resolves_names_through_kube_system_dns(
    defaults: Manifests, source: Endpoint
) -> None:
    assert connects(defaults, source, COREDNS, 53, "UDP")
    assert connects(defaults, source, COREDNS, 53, "TCP")
    assert not connects(defaults, source, COREDNS, 9153)
    assert not connects(defaults, source, INTERNET, 53, "UDP")


def test_default_deny_isolates_the_whole_namespace(defaults: Manifests) -> None:
    deny = defaults.get("NetworkPolicy", "lumina-default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_egress_targets_follow_the_values(overridden: Manifests) -> None:
    model_server = Endpoint("model server", ip="10.20.0.5")
    smtp_server = Endpoint("smtp server", ip="192.0.2.25")
    assert connects(overridden, CHATBOT, model_server, 11434)
    assert connects(overridden, CHATBOT, model_server, 443)
    assert not connects(overridden, CHATBOT, INTERNET, 443)  # CIDR narrowed to 10.20.0.0/16
    assert connects(overridden, BACKEND, smtp_server, 2525)  # SMTP host set: mail may leave
    assert not connects(overridden, BACKEND, INTERNET, 2525)
    assert not connects(overridden, FRONTEND, smtp_server, 2525)


def test_policies_can_be_turned_off(render: Any) -> None:
    assert not render("--set", "networkPolicy.enabled=false").of_kind("NetworkPolicy")
