"""Kubernetes: pods, events, rollouts, nodes and networking objects, read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sre_graph.tools.base import SourceUnavailable

KINDS = ("pods", "deployments", "replicasets", "events", "nodes", "services", "endpoints",
         "networkpolicies", "hpa", "configmaps")


class KubernetesPort(Protocol):
    """What the engine asks of Kubernetes. Objects come back as ``kubectl -o json`` dicts."""

    def list(self, kind: str, *, namespace: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of one kind (one of ``KINDS``), optionally by namespace and label selector."""
        ...

    def pod_logs(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
        since: datetime | None = None,
    ) -> str:
        """Container log text with timestamps, as ``kubectl logs --timestamps`` prints it."""
        ...


class LiveKubernetes:
    """The official kubernetes client against a cluster (kubeconfig or in-cluster)."""

    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None,
                 api_client: Any = None, timeout: float = 15.0) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                if kubeconfig or context:
                    api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
                else:
                    try:
                        config.load_incluster_config()
                        api_client = client.ApiClient()
                    except config.ConfigException:
                        api_client = config.new_client_from_config()
            except (config.ConfigException, OSError, TypeError) as exc:
                raise SourceUnavailable("kubernetes", f"no usable kubeconfig: {exc}") from exc
        self._api = api_client
        self._timeout = timeout
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._net = client.NetworkingV1Api(api_client)
        self._hpa = client.AutoscalingV2Api(api_client)

    def _call(self, namespaced: Any, cluster: Any, namespace: str | None, label_selector: str | None) -> list[dict]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        kwargs: dict[str, Any] = {"_request_timeout": self._timeout}
        if label_selector:
            kwargs["label_selector"] = label_selector
        try:
            result = namespaced(namespace, **kwargs) if namespace and namespaced else cluster(**kwargs)
        except ApiException as exc:
            raise SourceUnavailable("kubernetes", f"HTTP {exc.status}: {exc.reason}") from exc
        except HTTPError as exc:
            raise SourceUnavailable("kubernetes", f"{type(exc).__name__}: {exc}") from exc
        return self._api.sanitize_for_serialization(result).get("items", [])

    def list(self, kind, *, namespace=None, label_selector=None):
        table = {
            "pods": (self._core.list_namespaced_pod, self._core.list_pod_for_all_namespaces),
            "events": (self._core.list_namespaced_event, self._core.list_event_for_all_namespaces),
            "nodes": (None, self._core.list_node),
            "services": (self._core.list_namespaced_service, self._core.list_service_for_all_namespaces),
            "endpoints": (self._core.list_namespaced_endpoints, self._core.list_endpoints_for_all_namespaces),
            "configmaps": (self._core.list_namespaced_config_map, self._core.list_config_map_for_all_namespaces),
            "deployments": (self._apps.list_namespaced_deployment, self._apps.list_deployment_for_all_namespaces),
            "replicasets": (self._apps.list_namespaced_replica_set, self._apps.list_replica_set_for_all_namespaces),
            "networkpolicies": (self._net.list_namespaced_network_policy,
                                self._net.list_network_policy_for_all_namespaces),
            "hpa": (self._hpa.list_namespaced_horizontal_pod_autoscaler,
                    self._hpa.list_horizontal_pod_autoscaler_for_all_namespaces),
        }
        if kind not in table:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        namespaced, cluster = table[kind]
        return self._call(namespaced, cluster, namespace, label_selector)

    def pod_logs(self, namespace, pod, *, container=None, previous=False, tail_lines=None, since=None):
        from kubernetes.client.exceptions import ApiException

        kwargs: dict[str, Any] = {"timestamps": True, "previous": previous, "_request_timeout": self._timeout}
        if container:
            kwargs["container"] = container
        if tail_lines:
            kwargs["tail_lines"] = tail_lines
        try:
            return self._core.read_namespaced_pod_log(pod, namespace, **kwargs)
        except ApiException as exc:
            if exc.status in (400, 404):
                return ""
            raise SourceUnavailable("kubernetes", f"HTTP {exc.status}: {exc.reason}") from exc
