"""The local cluster itself: what a user of the `local` provider relies on.

These run against the real cluster (built from source and started by
``LocalClusterProvider.ensure_up``; the first run compiles Kubernetes and takes long).
Pods use ``lumina.local/busybox``, an image that ``up.sh`` assembles from Debian's
busybox-static, because there is no registry to pull from.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client, config
from kubernetes.client import exceptions

from plugins.local_cluster import provider as local
from reconciler.cluster import providers

BUSYBOX = "lumina.local/busybox:latest"
NON_ROOT_UID = 10001


@pytest.fixture(scope="module")
def cluster() -> providers.ClusterInfo:
    cluster_provider = local.LocalClusterProvider()
    if not cluster_provider.available():
        pytest.fail(
            "the local cluster cannot run here: it needs Linux, root and `go` on PATH "
            "(or binaries already built under ~/.cache/lumina/k8s)"
        )
    return cluster_provider.ensure_up()


@pytest.fixture(scope="module")
def api(cluster: providers.ClusterInfo) -> client.ApiClient:
    # The kubeconfig that users get is what the tests use, so it is tested too.
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig), context=cluster.context
    )
    return api_client


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace where Pod Security's restricted profile is enforced."""
    name = f"cluster-test-{uuid.uuid4().hex[:6]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    yield name
    core.delete_namespace(name)


def wait_for(check: Callable[[], bool], timeout: float, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s: {explain()}")


def pod_phase(core: client.CoreV1Api, namespace: str, name: str) -> str:
    status = core.read_namespaced_pod(name, namespace).status
    return str(status.phase) if status else "Unknown"


def describe_pod(core: client.CoreV1Api, namespace: str, name: str) -> str:
    status = core.read_namespaced_pod(name, namespace).status or client.V1PodStatus()
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    lines = [f"pod {name} is {status.phase}"]
    for container in status.container_statuses or []:
        lines.append(f"  container {container.name}: {container.state}")
    lines += [f"  event {e.reason}: {e.message}" for e in events.items]
    return "\n".join(lines)


def restricted_pod(
    name: str,
    command: list[str],
    *,
    image: str = BUSYBOX,
    restart: str = "Never",
    labels: dict[str, str] | None = None,
    volumes: dict[str, str] | None = None,
) -> client.V1Pod:
    """A pod that passes the restricted profile: non-root, no privileges, default seccomp."""
    claims = volumes or {}
    container = client.V1Container(
        name="main",
        image=image,
        image_pull_policy="Never",
        command=command,
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=client.V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[client.V1VolumeMount(name=v, mount_path=p) for v, p in claims.items()],
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
        spec=client.V1PodSpec(
            restart_policy=restart,
            termination_grace_period_seconds=1,
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=NON_ROOT_UID,
                run_as_group=NON_ROOT_UID,
                fs_group=NON_ROOT_UID,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            containers=[container],
            volumes=[
                client.V1Volume(
                    name=v,
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name=v
                    ),
                )
                for v in claims
            ],
        ),
    )


def run_to_completion(core: client.CoreV1Api, namespace: str, pod: client.V1Pod) -> str:
    """Create the pod, wait until it has succeeded, and return its log."""
    assert pod.metadata is not None and pod.metadata.name is not None
    name = pod.metadata.name
    core.create_namespaced_pod(namespace, pod)

    def finished() -> bool:
        phase = pod_phase(core, namespace, name)
        assert phase != "Failed", describe_pod(core, namespace, name)
        return phase == "Succeeded"

    wait_for(finished, 120, lambda: describe_pod(core, namespace, name))
    log: str = core.read_namespaced_pod_log(name, namespace)
    return log


def test_status_of_a_cluster_never_started_names_every_component_stopped(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINA_CACHE", str(tmp_path))
    states = local.LocalClusterProvider(output_to_terminal=False).status()
    expected = {"containerd", "etcd", *local.COMPONENTS, "provisioner", "image-registry"}
    expected |= {"node", "coredns"}
    assert states == dict.fromkeys(expected, "stopped")


def test_node_is_ready_with_kubernetes_1_34(core: client.CoreV1Api) -> None:
    nodes = core.list_node().items
    assert len(nodes) == 1
    status = nodes[0].status
    assert status is not None and status.node_info is not None
    ready = {c.type: c.status for c in status.conditions or []}.get("Ready")
    assert ready == "True", status.conditions
    assert status.node_info.kubelet_version.startswith("v1.34."), status.node_info


def test_non_root_pod_runs_under_restricted_pod_security(
    core: client.CoreV1Api, namespace: str
) -> None:
    pod = restricted_pod("non-root", ["sleep", "3600"], restart="Always")
    core.create_namespaced_pod(namespace, pod)

    def running() -> bool:
        return pod_phase(core, namespace, "non-root") == "Running"

    wait_for(running, 120, lambda: describe_pod(core, namespace, "non-root"))
    core.delete_namespaced_pod("non-root", namespace, grace_period_seconds=0)


def test_root_pod_is_rejected_by_restricted_pod_security(
    core: client.CoreV1Api, namespace: str
) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="root"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="main", image=BUSYBOX, command=["sleep", "1"])]
        ),
    )
    with pytest.raises(exceptions.ApiException) as rejected:
        core.create_namespaced_pod(namespace, pod)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in str(rejected.value.body)


def test_claim_on_standard_binds_and_keeps_what_a_non_root_pod_wrote(
    core: client.CoreV1Api, namespace: str
) -> None:
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            storage_class_name="standard",
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "64Mi"}),
        ),
    )
    core.create_namespaced_persistent_volume_claim(namespace, claim)

    def bound() -> bool:
        status = core.read_namespaced_persistent_volume_claim("data", namespace).status
        return status is not None and status.phase == "Bound"

    wait_for(
        bound,
        60,
        lambda: str(core.read_namespaced_persistent_volume_claim("data", namespace).status),
    )

    writer = restricted_pod(
        "writer",
        ["sh", "-c", "echo kept-across-pods > /data/note && id -u"],
        volumes={"data": "/data"},
    )
    assert run_to_completion(core, namespace, writer).strip() == str(NON_ROOT_UID)
    reader = restricted_pod("reader", ["cat", "/data/note"], volumes={"data": "/data"})
    assert run_to_completion(core, namespace, reader).strip() == "kept-across-pods"


def test_node_port_answers_on_localhost(core: client.CoreV1Api, namespace: str) -> None:
    server = restricted_pod(
        "web",
        [
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo hello-from-nodeport > /tmp/www/index.html "
            "&& exec httpd -f -p 8080 -h /tmp/www",
        ],
        restart="Always",
        labels={"app": "web"},
    )
    core.create_namespaced_pod(namespace, server)
    service = core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(
                type="NodePort",
                selector={"app": "web"},
                ports=[client.V1ServicePort(port=80, target_port=8080)],
            ),
        ),
    )
    assert service.spec is not None and service.spec.ports
    url = f"http://127.0.0.1:{service.spec.ports[0].node_port}/"
    answers: list[str] = []

    def answered() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                answers.append(response.read().decode())
        except OSError as error:
            answers.append(repr(error))
            return False
        return True

    wait_for(
        answered,
        120,
        lambda: f"{url}: last answer {answers[-1:]}\n" + describe_pod(core, namespace, "web"),
    )
    assert answers[-1].strip() == "hello-from-nodeport"


def test_cluster_dns_resolves_the_api_service_from_a_pod(
    core: client.CoreV1Api, namespace: str
) -> None:
    pod = restricted_pod("dns", ["nslookup", "kubernetes.default.svc.cluster.local"])
    log = run_to_completion(core, namespace, pod)
    spec = core.read_namespaced_service("kubernetes", "default").spec
    assert spec is not None and spec.cluster_ip
    assert spec.cluster_ip in log, log


def build_tiny_image(context: pathlib.Path, tag: str, label: str = "") -> None:
    """`docker build` a FROM-scratch image holding only Debian's static busybox."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed: this test builds an image with it")
    busybox = pathlib.Path("/bin/busybox")
    if not busybox.exists():
        pytest.fail("/bin/busybox is missing: install Debian's busybox-static")
    shutil.copy(busybox, context / "busybox")
    (context / "Dockerfile").write_text(
        f'FROM scratch\nCOPY busybox /bin/busybox\nLABEL test="{label}"\n'
        'ENTRYPOINT ["/bin/busybox"]\n'
    )
    subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True)


def cluster_images() -> set[str]:
    socket = local.cache_dir() / "cluster" / "containerd" / "containerd.sock"
    listed = subprocess.run(
        ["ctr", "--address", str(socket), "-n", "k8s.io", "images", "ls", "-q"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(listed.stdout.split())


def forget_images(tags: list[str]) -> None:
    """Image garbage collection is off in this cluster: leave no test image behind."""
    socket = local.cache_dir() / "cluster" / "containerd" / "containerd.sock"
    for tag in tags:
        subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
        subprocess.run(
            ["ctr", "--address", str(socket), "-n", "k8s.io", "images", "rm", tag],
            check=False,
            capture_output=True,
        )


def test_images_built_with_docker_run_in_the_cluster(
    core: client.CoreV1Api, namespace: str, tmp_path: pathlib.Path
) -> None:
    """`docker build`, then load_images, then a pod uses the image: it came through the
    cluster's own loopback registry (only new layers move), under the name it was built."""
    name, version = "lumina.local/cluster-test", uuid.uuid4().hex[:8]
    tag = f"{name}:{version}"
    build_tiny_image(tmp_path, tag)
    try:
        local.LocalClusterProvider(output_to_terminal=False).load_images([tag])
        listed = f"http://127.0.0.1:5005/v2/{name.partition('/')[2]}/tags/list"
        with urllib.request.urlopen(listed, timeout=5) as answer:
            assert version in answer.read().decode(), "the image did not go through the registry"
        assert tag in cluster_images()
        pod = restricted_pod("loaded", ["/bin/busybox", "echo", "image-from-docker"], image=tag)
        assert run_to_completion(core, namespace, pod).strip() == "image-from-docker"
    finally:
        forget_images([tag])


def test_loading_keeps_only_the_newest_tags_of_a_repository(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing can be pulled back, so GC is off: load_images bounds each repository."""
    monkeypatch.setenv("LUMINA_KEEP_IMAGES", "2")
    repository = f"lumina.local/prune-test-{uuid.uuid4().hex[:6]}"
    tags = [f"{repository}:v{i}" for i in range(1, 4)]
    try:
        for tag in tags:
            build_tiny_image(tmp_path, tag, label=tag)
            local.LocalClusterProvider(output_to_terminal=False).load_images([tag])
        kept = {image for image in cluster_images() if image.startswith(repository)}
        assert kept == set(tags[1:])
    finally:
        forget_images(tags)


@pytest.mark.exclusive
def test_down_then_up_keeps_volume_data(
    core: client.CoreV1Api, namespace: str, cluster: providers.ClusterInfo
) -> None:
    """`down` stops every component (status says so); `up` brings back the data.

    Exclusive: it stops the cluster under every other environment's feet, so it runs
    alone, after the modules that run side by side.
    """
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="survivor"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],  # no class named: the default must be `standard`
            resources=client.V1VolumeResourceRequirements(requests={"storage": "16Mi"}),
        ),
    )
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    mount = {"survivor": "/data"}
    writer = restricted_pod("before-down", ["sh", "-c", "echo still-here > /data/f"], volumes=mount)
    run_to_completion(core, namespace, writer)

    cluster_provider = local.LocalClusterProvider(output_to_terminal=False)
    cluster_provider.down()
    stopped = cluster_provider.status()
    assert stopped["kube-apiserver"] == "stopped", stopped
    assert stopped["kubelet"] == "stopped", stopped

    assert cluster_provider.ensure_up() == cluster
    running = cluster_provider.status()
    assert all(state.startswith("running") for state in running.values()), running
    reader = restricted_pod("after-up", ["cat", "/data/f"], volumes=mount)
    assert run_to_completion(core, namespace, reader).strip() == "still-here"
