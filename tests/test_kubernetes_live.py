"""``LiveKubernetes`` against a real kube-apiserver holds the same data ``SnapshotKubernetes`` replays.

Two recorded incidents are loaded, one after the other, into one API server (``tests/kube.py``):
for every kind and a spread of queries (all namespaces, each namespace, equality and set-based
label selectors) the live port, authenticated as the agent's ServiceAccount bound by
``deploy/rbac.yaml``, answers what the snapshot port answers on every field the server preserves;
pod logs come through the API server from a fake kubelet and match byte for byte. The role is
read-only (writes, scaling and secrets are refused), and every failure to reach or be allowed by
the server is a ``SourceUnavailable`` with a reason, never a raw exception.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_graph.tools.base import SourceUnavailable
from sre_graph.tools.kubernetes import KINDS, LiveKubernetes
from sre_graph.tools.replay import Incident, SnapshotKubernetes, load_incident, log_line_time
from tests.kube import (
    AGENT_SA,
    KubeCluster,
    clear_cluster,
    compare_lists,
    free_port,
    load_incident_into_cluster,
    request,
    write_kubeconfig,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
LOADED_INCIDENTS = ["app-payments-psp-outage", "app-storefront-latency-recs-memory-leak"]
"""Two incidents a real API server accepts as recorded: between them every kind (network policies and
HPAs too), 42 pod logs, and a crashed container's previous log."""


@dataclass
class Loaded:
    """One incident loaded into the API server, with both ports over it."""

    cluster: KubeCluster
    incident: Incident
    live: LiveKubernetes
    snapshot: SnapshotKubernetes
    counts: dict[str, int]

    def recorded(self, kind: str) -> list[dict[str, Any]]:
        return self.snapshot.list(kind)


@pytest.fixture(scope="module", params=LOADED_INCIDENTS)
def loaded(request: pytest.FixtureRequest, kube_apiserver: KubeCluster) -> Iterator[Loaded]:
    """The API server holding exactly one incident's ``kubernetes/`` folder; the live port is the agent's."""
    incident = load_incident(REPO / "evals" / "incidents" / request.param)
    with contextlib.closing(kube_apiserver.api_client()) as admin:
        clear_cluster(admin, kube_apiserver)
        counts = load_incident_into_cluster(admin, incident.path, cluster=kube_apiserver)
    yield Loaded(
        cluster=kube_apiserver,
        incident=incident,
        live=LiveKubernetes(kubeconfig=str(kube_apiserver.agent_kubeconfig), timeout=20),
        snapshot=SnapshotKubernetes(incident.path, incident.now),
        counts=counts,
    )


# --------------------------------------------------------------------- the queries


def label_selectors(items: list[dict[str, Any]]) -> list[str]:
    """Selectors built from the recorded labels: equality, inequality, set-based, existence, negation."""
    out = ["!sre-graph.test/absent", "sre-graph.test/absent"]  # everything; nothing
    labels = [(o.get("metadata") or {}).get("labels") or {} for o in items]
    keys = Counter(k for lab in labels for k in lab)
    if not keys:
        return out
    # The most common key that not every object has (so `key` and `!key` both select something).
    partial = [k for k, n in keys.most_common() if n < len(items)]
    key = (partial or [keys.most_common(1)[0][0]])[0]
    values = sorted({lab[key] for lab in labels if key in lab})
    first, last = values[0], values[-1]
    out += [f"{key}={first}", f"{key}=={last}", f"{key}!={first}", f"{key} in ({first},{last})",
            f"{key} notin ({first})", f"!{key}", key]
    others = [k for k, _ in keys.most_common() if k != key]
    if others:
        other = others[0]
        value = next(lab[other] for lab in labels if other in lab)
        out += [f"{key},{other}={value}", f"{key} in ({first},{last}),!{other}"]
    return out


def queries(loaded: Loaded, kind: str) -> list[dict[str, Any]]:
    """The calls to compare for one kind: all namespaces, every recorded namespace, an empty one, selectors."""
    items = loaded.recorded(kind)
    namespaces = sorted({(o.get("metadata") or {}).get("namespace") or "" for o in items} - {""})
    calls: list[dict[str, Any]] = [{}]
    calls += [{"namespace": ns} for ns in namespaces]
    calls.append({"namespace": "sre-graph-no-such-namespace"})
    if kind == "nodes":
        calls.append({"namespace": "kube-system"})  # nodes are cluster-scoped: the namespace is ignored
    calls += [{"label_selector": sel} for sel in label_selectors(items)]
    if namespaces:
        busiest = Counter((o.get("metadata") or {}).get("namespace") for o in items).most_common(1)[0][0]
        calls += [{"namespace": busiest, "label_selector": sel} for sel in label_selectors(items)[2:5]]
    return calls


# --------------------------------------------------------------------- parity


@pytest.mark.parametrize("kind", KINDS)
def test_list_matches_snapshot(loaded: Loaded, kind: str) -> None:
    recorded = loaded.recorded(kind)
    assert loaded.counts.get(kind, 0) == len(recorded)
    problems = []
    for call in queries(loaded, kind):
        want = loaded.snapshot.list(kind, **call)
        got = loaded.live.list(kind, **call)
        for problem in compare_lists(want, got, kind=kind, server_owned=loaded.cluster.baseline.get(kind, set())):
            problems.append(f"list({kind!r}, {call}): {problem}")
    assert not problems, "\n".join(problems[:40])


def test_loaded_incidents_cover_every_kind() -> None:
    """Between them, the loaded incidents record every kind and both current and previous logs."""
    kinds, previous = set(), 0
    for name in LOADED_INCIDENTS:
        folder = REPO / "evals" / "incidents" / name / "kubernetes"
        kinds |= {kind for kind in KINDS if (folder / f"{kind}.json").is_file()}
        previous += len(list(folder.glob("logs/*/*/*.previous.log")))
    assert kinds == set(KINDS)
    assert previous >= 1


def test_queries_select_something(loaded: Loaded) -> None:
    """The parity above is not vacuous: the selectors and namespaces pick proper, non-empty subsets."""
    proper = 0
    for kind in KINDS:
        total = len(loaded.recorded(kind))
        for call in queries(loaded, kind):
            if 0 < len(loaded.snapshot.list(kind, **call)) < total:
                proper += 1
    assert proper >= 30, proper


def test_live_objects_look_like_kubectl_output(loaded: Loaded) -> None:
    """Items carry apiVersion and kind, and timestamps stay RFC 3339 with ``Z`` as the server sends them."""
    expected = {"pods": ("v1", "Pod"), "deployments": ("apps/v1", "Deployment"), "events": ("v1", "Event"),
                "nodes": ("v1", "Node"), "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy"),
                "hpa": (loaded.cluster.hpa_version, "HorizontalPodAutoscaler")}
    for kind, (api_version, name) in expected.items():
        for obj in loaded.live.list(kind):
            assert (obj.get("apiVersion"), obj.get("kind")) == (api_version, name), obj.get("metadata")
    for pod in loaded.live.list("pods"):
        created = pod["metadata"]["creationTimestamp"]
        assert created.endswith("Z") and "+00:00" not in created, created
    # The 1.20 server has no autoscaling/v2 (1.23+): the port fell back to v2beta2 and still answers.
    assert loaded.cluster.hpa_version == "autoscaling/v2beta2"


def log_files(loaded: Loaded) -> list[tuple[str, str, str, bool]]:
    root = loaded.incident.path / "kubernetes" / "logs"
    out = []
    for path in sorted(root.glob("*/*/*.log")):
        namespace, pod = path.parent.parent.name, path.parent.name
        previous = path.name.endswith(".previous.log")
        container = path.name[: -len(".previous.log")] if previous else path.name[: -len(".log")]
        out.append((namespace, pod, container, previous))
    return out


def test_pod_logs_match_snapshot(loaded: Loaded) -> None:
    files = log_files(loaded)
    assert len(files) >= 10
    problems = []
    checked = 0
    for namespace, pod, container, previous in files:
        calls: list[dict[str, Any]] = [
            {"container": container, "previous": previous},
            {"container": container, "previous": previous, "tail_lines": 3},
            {"container": container, "previous": not previous},  # often absent: both must say ""
            {"container": container, "previous": previous, "tail_lines": 10_000},
        ]
        if not previous:
            calls.append({})  # no container: the pod's default (here: its only) container
        for call in calls:
            want = loaded.snapshot.pod_logs(namespace, pod, **call)
            got = loaded.live.pod_logs(namespace, pod, **call)
            checked += bool(want)
            if got != want:
                problems.append(f"pod_logs({namespace!r}, {pod!r}, {call}): live {got[:200]!r} != "
                                f"snapshot {want[:200]!r}")
    assert not problems, "\n".join(problems[:20])
    assert checked >= len(files)
    # The API server asked for these logs with timestamps, and dialed each pod's node as recorded.
    assert any("timestamps=true" in r for r in loaded.cluster.kubelet.requests)
    nodes = {n["metadata"]["name"]: n for n in loaded.recorded("nodes")}
    recorded_targets = {f"{a['address']}:{n['status']['daemonEndpoints']['kubeletEndpoint']['Port']}"
                        for n in nodes.values() for a in n["status"]["addresses"]}
    assert loaded.cluster.proxy.targets and set(loaded.cluster.proxy.targets) <= recorded_targets


def test_pod_logs_since(loaded: Loaded) -> None:
    """``since`` reaches the kubelet as ``sinceSeconds``: the lines from that moment on, as replayed."""
    compared = 0
    for namespace, pod, container, previous in log_files(loaded):
        path = loaded.incident.path / "kubernetes" / "logs" / namespace / pod / \
            f"{container}{'.previous' if previous else ''}.log"
        times = [t for t in map(log_line_time, path.read_text().splitlines()) if t is not None]
        # A cut with no line in the 3 s before it: sinceSeconds has whole-second resolution.
        cut = next((t for i, t in enumerate(times) if 0 < i < len(times) - 1
                    and all(not (t - timedelta(seconds=3) <= u < t) for u in times)), None)
        if cut is None:
            continue
        want = loaded.snapshot.pod_logs(namespace, pod, container=container, previous=previous, since=cut)
        # The live port reads a naive ``since`` as UTC (the snapshot port only takes aware times).
        for since in (cut, cut.astimezone(UTC).replace(tzinfo=None)):
            got = loaded.live.pod_logs(namespace, pod, container=container, previous=previous, since=since)
            assert got == want, (namespace, pod, container, previous, since)
            assert 0 < len(got.splitlines()) < len(times)
        compared += 1
    assert compared >= 3
    namespace, pod, container, previous = log_files(loaded)[0]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert loaded.live.pod_logs(namespace, pod, container=container, previous=previous, since=future) == ""


def test_pod_logs_of_missing_things_are_empty(loaded: Loaded) -> None:
    namespace, pod, container, _ = log_files(loaded)[0]
    for args, kwargs in [
        ((namespace, "sre-graph-no-such-pod"), {}),
        ((namespace, pod), {"container": "sre-graph-no-such-container"}),
        (("sre-graph-no-such-namespace", pod), {"container": container}),
    ]:
        assert loaded.snapshot.pod_logs(*args, **kwargs) == ""
        assert loaded.live.pod_logs(*args, **kwargs) == ""


# --------------------------------------------------------------------- behaviour beyond the recordings


def test_pod_logs_default_container_is_kubectls(kube_apiserver: KubeCluster) -> None:
    """Without ``container``, a multi-container pod's logs are its default container's, as kubectl picks it."""
    namespace = "sre-graph-test-extra"
    live = LiveKubernetes(kubeconfig=str(kube_apiserver.agent_kubeconfig))
    node = "sre-graph-test-node"
    with contextlib.closing(kube_apiserver.api_client()) as admin:
        with contextlib.suppress(Exception):
            request(admin, "POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
        with contextlib.suppress(Exception):
            request(admin, "POST", "/api/v1/nodes", body={"metadata": {"name": node}})
            request(admin, "PUT", f"/api/v1/nodes/{node}/status", body={
                **request(admin, "GET", f"/api/v1/nodes/{node}"),
                "status": {"addresses": [{"type": "InternalIP", "address": "10.9.9.9"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}})
        pods = {"annotated": {"kubectl.kubernetes.io/default-container": "second"}, "plain": {}}
        try:
            for name, annotations in pods.items():
                request(admin, "POST", f"/api/v1/namespaces/{namespace}/pods", body={
                    "metadata": {"name": name, "annotations": annotations},
                    "spec": {"nodeName": node, "containers": [{"name": "first", "image": "busybox"},
                                                              {"name": "second", "image": "busybox"}]}})
                for container in ("first", "second"):
                    kube_apiserver.kubelet.extra[(namespace, name, container, False)] = \
                        f"2026-01-01T00:00:00.000000000Z {name} {container}\n"
            assert live.pod_logs(namespace, "annotated") == "2026-01-01T00:00:00.000000000Z annotated second\n"
            assert live.pod_logs(namespace, "plain") == "2026-01-01T00:00:00.000000000Z plain first\n"
            assert live.pod_logs(namespace, "plain", container="second").endswith("plain second\n")
        finally:
            for name in pods:
                request(admin, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}",
                        query={"gracePeriodSeconds": 0})
            request(admin, "DELETE", f"/api/v1/nodes/{node}")


# --------------------------------------------------------------------- RBAC: deploy/rbac.yaml is read-only


def test_agent_role_reads_everything_the_port_asks(kube_apiserver: KubeCluster) -> None:
    live = LiveKubernetes(kubeconfig=str(kube_apiserver.agent_kubeconfig))
    for kind in KINDS:
        live.list(kind)
        live.list(kind, namespace="kube-system", label_selector="app")
    with contextlib.closing(kube_apiserver.api_client(kube_apiserver.agent_kubeconfig)) as agent:
        review = request(agent, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "subresource": "log",
                                            "namespace": "payments"}}})
        assert review["status"]["allowed"] is True


def _status_of(call: Any) -> int:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        return int(exc.status or 0)
    return 200


def test_agent_role_cannot_change_anything_or_read_secrets(kube_apiserver: KubeCluster) -> None:
    from kubernetes import client

    namespace = "sre-graph-test-rbac"
    with contextlib.closing(kube_apiserver.api_client()) as admin:
        core = client.CoreV1Api(admin)
        apps = client.AppsV1Api(admin)
        with contextlib.suppress(client.ApiException):
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        labels = {"app": "victim"}
        template = client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels),
            spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="busybox")]))
        apps.create_namespaced_deployment(namespace, client.V1Deployment(
            metadata=client.V1ObjectMeta(name="victim"),
            spec=client.V1DeploymentSpec(replicas=1, selector=client.V1LabelSelector(match_labels=labels),
                                         template=template)))
        core.create_namespaced_pod(namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="victim"),
                                                           spec=template.spec))
        core.create_namespaced_secret(namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name="db-password"), string_data={"password": "hunter2"}))
        try:
            with contextlib.closing(kube_apiserver.api_client(kube_apiserver.agent_kubeconfig)) as agent_client:
                a_core, a_apps = client.CoreV1Api(agent_client), client.AppsV1Api(agent_client)
                new_pod = client.V1Pod(metadata=client.V1ObjectMeta(name="intruder"), spec=template.spec)
                denied = {
                    "create pod": lambda: a_core.create_namespaced_pod(namespace, new_pod),
                    "delete pod": lambda: a_core.delete_namespaced_pod("victim", namespace),
                    "patch pod": lambda: a_core.patch_namespaced_pod(
                        "victim", namespace, {"metadata": {"labels": {"pwned": "true"}}}),
                    "scale deployment": lambda: a_apps.patch_namespaced_deployment_scale(
                        "victim", namespace, {"spec": {"replicas": 0}}),
                    "patch deployment": lambda: a_apps.patch_namespaced_deployment(
                        "victim", namespace, {"spec": {"replicas": 0}}),
                    "delete deployment": lambda: a_apps.delete_namespaced_deployment("victim", namespace),
                    "read secret": lambda: a_core.read_namespaced_secret("db-password", namespace),
                    "list secrets": lambda: a_core.list_secret_for_all_namespaces(),
                    "create configmap": lambda: a_core.create_namespaced_config_map(
                        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))),
                }
                statuses = {what: _status_of(call) for what, call in denied.items()}
                assert statuses == dict.fromkeys(denied, 403)
                # …while the same reads the port makes are allowed.
                assert _status_of(lambda: a_core.read_namespaced_pod("victim", namespace)) == 200
            # Nothing changed, and the admin (system:masters) could read the secret: the 403s were RBAC.
            assert apps.read_namespaced_deployment("victim", namespace).spec.replicas == 1
            assert not (core.read_namespaced_pod("victim", namespace).metadata.labels or {}).get("pwned")
            assert core.read_namespaced_secret("db-password", namespace).data["password"]
        finally:
            core.delete_namespaced_pod("victim", namespace, grace_period_seconds=0)
            apps.delete_namespaced_deployment("victim", namespace)
            core.delete_namespaced_secret("db-password", namespace)


# --------------------------------------------------------------------- failures are SourceUnavailable


def _expect_unavailable(live: LiveKubernetes, needle: str) -> list[str]:
    reasons = []
    for call in (lambda: live.list("pods"), lambda: live.list("hpa", namespace="payments"),
                 lambda: live.list("nodes", label_selector="app in (a,b)"),
                 lambda: live.pod_logs("payments", "payments-api-0", container="app", tail_lines=5)):
        with pytest.raises(SourceUnavailable) as info:
            call()
        assert info.value.source == "kubernetes"
        assert needle in info.value.reason, info.value.reason
        reasons.append(info.value.reason)
    return reasons


def test_unreachable_server_is_source_unavailable(tmp_path: Path, kube_apiserver: KubeCluster) -> None:
    port = free_port()
    config = write_kubeconfig(tmp_path / "down.kubeconfig", f"https://127.0.0.1:{port}", token="x",
                              ca_file=kube_apiserver.ca_file, user="x")
    _expect_unavailable(LiveKubernetes(kubeconfig=str(config), timeout=3), f"cannot reach https://127.0.0.1:{port}")


def test_silent_server_is_source_unavailable_within_the_timeout(tmp_path: Path,
                                                              kube_apiserver: KubeCluster) -> None:
    """A server that accepts connections and never answers costs about ``timeout``, not 4 x (urllib3's retries)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # never accepted: the TLS handshake gets no answer
        port = silent.getsockname()[1]
        config = write_kubeconfig(tmp_path / "silent.kubeconfig", f"https://127.0.0.1:{port}", token="x",
                                  ca_file=kube_apiserver.ca_file, user="x")
        live = LiveKubernetes(kubeconfig=str(config), timeout=1)
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=f"cannot reach https://127.0.0.1:{port}"):
            live.list("pods")
        assert time.monotonic() - started < 3.5


def test_bad_token_is_source_unavailable(tmp_path: Path, kube_apiserver: KubeCluster) -> None:
    config = write_kubeconfig(tmp_path / "bad.kubeconfig", kube_apiserver.url, token="not-a-valid-token",
                              ca_file=kube_apiserver.ca_file, user="x")
    _expect_unavailable(LiveKubernetes(kubeconfig=str(config)), "unauthorised (HTTP 401)")


def test_untrusted_server_certificate_is_source_unavailable(tmp_path: Path, kube_apiserver: KubeCluster) -> None:
    config = write_kubeconfig(tmp_path / "no-ca.kubeconfig", kube_apiserver.url, token="x", ca_file=None, user="x")
    reasons = _expect_unavailable(LiveKubernetes(kubeconfig=str(config)), f"cannot reach {kube_apiserver.url}")
    assert "CERTIFICATE_VERIFY_FAILED" in reasons[0]


def test_user_without_role_is_source_unavailable(kube_apiserver: KubeCluster) -> None:
    live = LiveKubernetes(kubeconfig=str(kube_apiserver.nobody_kubeconfig))
    reasons = _expect_unavailable(live, "forbidden (HTTP 403)")
    assert 'User "nobody" cannot list resource "pods"' in reasons[0]


def test_missing_kubeconfig_is_source_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="no usable kubeconfig"):
        LiveKubernetes(kubeconfig=str(tmp_path / "absent.kubeconfig"))


def test_agent_identity_is_the_service_account(kube_apiserver: KubeCluster) -> None:
    """The agent's credentials are a real ServiceAccount token: the subject deploy/rbac.yaml binds, and no more."""
    token = yaml.safe_load(kube_apiserver.agent_kubeconfig.read_text())["users"][0]["user"]["token"]
    with contextlib.closing(kube_apiserver.api_client()) as admin:
        review = request(admin, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert review["status"]["authenticated"] is True
    namespace, name = AGENT_SA
    assert review["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:{name}"
    with contextlib.closing(kube_apiserver.api_client(kube_apiserver.agent_kubeconfig)) as agent:
        rules = request(agent, "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": "default"}})["status"]["resourceRules"]
    verbs = {verb for rule in rules for verb in rule["verbs"]}
    assert verbs <= {"get", "list", "watch", "create"}, verbs
    # `create` only on the self-review APIs every authenticated user has (system:basic-user).
    creatable = {r for rule in rules if "create" in rule["verbs"] for r in rule.get("resources", [])}
    assert creatable <= {"selfsubjectaccessreviews", "selfsubjectrulesreviews"}, creatable
    readable = {r for rule in rules if "list" in rule["verbs"] for r in rule.get("resources", [])}
    assert "secrets" not in readable and {"pods", "pods/log", "events", "horizontalpodautoscalers"} <= readable
