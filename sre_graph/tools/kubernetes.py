"""Kubernetes: pods, events, rollouts, nodes and networking objects, read-only."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from sre_graph.timeutil import parse_time
from sre_graph.tools.base import SourceUnavailable

KINDS = ("pods", "deployments", "replicasets", "events", "nodes", "services", "endpoints",
         "networkpolicies", "hpa", "configmaps")


class KubernetesPort(Protocol):
    """What the engine asks of Kubernetes. Objects come back as ``kubectl -o json`` dicts."""

    def list(
        self, kind: str, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
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
    """The official kubernetes client against a cluster (kubeconfig or in-cluster).

    Objects are returned exactly as the API server sends them (the raw JSON, not the client's
    models, which drop fields they do not know and re-format timestamps), with each item's
    ``apiVersion`` and ``kind`` filled in the way ``kubectl get -o json`` does. Every failure to
    reach or be answered by the API server is a :class:`SourceUnavailable` naming the cause.
    """

    def __init__(self, *, kubeconfig: str | None = None, context: str | None = None,
                 api_client: Any = None, timeout: float = 15.0) -> None:
        from kubernetes import client, config

        if api_client is None:
            configuration = type.__call__(client.Configuration)  # a fresh one, not a copy of the global default
            try:
                if kubeconfig or context:
                    config.load_kube_config(config_file=kubeconfig, context=context,
                                            client_configuration=configuration)
                else:
                    try:
                        config.load_incluster_config(client_configuration=configuration)
                    except config.ConfigException:
                        config.load_kube_config(client_configuration=configuration)
            except (config.ConfigException, OSError, TypeError, ValueError) as exc:
                raise SourceUnavailable("kubernetes", f"no usable kubeconfig: {exc}") from exc
            # urllib3 retries 3 times by default, so a silent server would cost 4 x `timeout`: retry a
            # failed connection once and never a read that timed out.
            from urllib3.util.retry import Retry

            configuration.retries = Retry(total=1, read=0, redirect=0)
            api_client = client.ApiClient(configuration=configuration)
        self._api = api_client
        self._timeout = timeout
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._net = client.NetworkingV1Api(api_client)
        self._hpa = client.AutoscalingV2Api(api_client)
        self._hpa_version: str | None = None
        """The autoscaling group version this server serves (``v2``, else ``v2beta2`` before 1.23)."""

    # ----------------------------------------------------------------- transport

    def _unavailable(self, exc: BaseException) -> SourceUnavailable:
        """A :class:`SourceUnavailable` saying why a request failed, in words an operator can act on."""
        from kubernetes.client.exceptions import ApiException

        host = getattr(getattr(self._api, "configuration", None), "host", None) or "the API server"
        if isinstance(exc, ApiException) and exc.status:
            what = {
                401: "unauthorised (HTTP 401): the API server rejected the credentials (bad or expired token "
                     "or certificate)",
                403: "forbidden (HTTP 403): the credentials lack read access (see deploy/rbac.yaml)",
            }.get(exc.status, f"HTTP {exc.status} {exc.reason or ''}".strip())
            message = _status_message(exc)
            return SourceUnavailable("kubernetes", f"{what}: {message}" if message else what)
        # Status 0 is the client's wrapper for TLS failures; the rest are urllib3 / socket errors.
        cause = getattr(exc, "reason", None) or exc
        return SourceUnavailable("kubernetes", f"cannot reach {host}: {type(exc).__name__}: {cause}")

    def _json(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """Call one client method and return the server's JSON body, or raise :class:`SourceUnavailable`."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = call(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            return json.loads(response.data)
        except ApiException as exc:
            raise self._unavailable(exc) from exc
        except (HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        except ValueError as exc:  # not JSON: a proxy or something else answered
            raise SourceUnavailable("kubernetes", f"the API server sent a reply that is not JSON: {exc}") from exc

    def _get(self, path: str, query: list[tuple[str, str]]) -> Any:
        """GET a path the typed client has no method for (an older API version), with the client's auth."""
        method, url, headers, body, post = self._api.param_serialize(
            "GET", path, query_params=query, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])

        def call(**kwargs: Any) -> Any:
            kwargs.pop("_preload_content", None)
            response = self._api.call_api(method, url, headers, body, post, **kwargs)
            if not 200 <= response.status <= 299:
                from kubernetes.client.exceptions import ApiException

                response.read()
                raise ApiException.from_response(http_resp=response, body=response.data.decode(errors="replace"),
                                                 data=None)
            response.read()
            return response

        return self._json(call)

    # ----------------------------------------------------------------- the port

    def _hpa_list(self, namespace: str | None, query: dict[str, Any]) -> Any:
        """HorizontalPodAutoscalers as ``autoscaling/v2``, or ``v2beta2`` on servers older than 1.23."""
        if self._hpa_version in (None, "v2"):
            call: Callable[..., Any]
            args: tuple[str, ...]
            if namespace:
                call, args = self._hpa.list_namespaced_horizontal_pod_autoscaler, (namespace,)
            else:
                call, args = self._hpa.list_horizontal_pod_autoscaler_for_all_namespaces, ()
            try:
                body = self._json(call, *args, **query)
            except SourceUnavailable as exc:
                # A list is 404 only when the group version is not served (never for a missing namespace).
                if self._hpa_version == "v2" or _http_status(exc) != 404:
                    raise
                self._hpa_version = "v2beta2"
            else:
                self._hpa_version = "v2"
                return body
        base = f"/apis/autoscaling/{self._hpa_version}"
        path = (f"{base}/namespaces/{quote(namespace, safe='')}/horizontalpodautoscalers" if namespace
                else f"{base}/horizontalpodautoscalers")
        return self._get(path, [(_QUERY_NAMES[k], v) for k, v in query.items()])

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
            "hpa": (None, None),
        }
        if kind not in table:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        query: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if kind == "hpa":
            body = self._hpa_list(namespace, query)
        else:
            namespaced, cluster = table[kind]
            if namespace and namespaced:
                body = self._json(namespaced, namespace, **query)
            else:
                body = self._json(cluster, **query)
        return _items(body)

    def _default_container(self, namespace: str, pod: str) -> str | None:
        """The container ``kubectl logs`` picks: the ``default-container`` annotation, else the first one."""
        try:
            obj = self._json(self._core.read_namespaced_pod, pod, namespace)
        except SourceUnavailable as exc:
            if _http_status(exc) == 404:
                return None
            raise
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
        names = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or []]
        if annotation in names:
            return annotation
        return names[0] if names else None

    def pod_logs(self, namespace, pod, *, container=None, previous=False, tail_lines=None, since=None):
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if container is None:
            container = self._default_container(namespace, pod)
            if container is None:
                return ""
        kwargs: dict[str, Any] = {"container": container, "timestamps": True, "previous": previous}
        if since is not None:
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - since).total_seconds()
            if age <= 0:
                return ""  # nothing can have been logged after now
            # sinceSeconds counts whole seconds on the kubelet's clock: ask for a little more, then cut
            # exactly at `since` by each line's timestamp (and only then take the tail).
            kwargs["since_seconds"] = math.ceil(age) + 2
        elif tail_lines:
            kwargs["tail_lines"] = tail_lines
        try:
            response = self._core.read_namespaced_pod_log(pod, namespace, _preload_content=False,
                                                          _request_timeout=self._timeout, **kwargs)
            text = response.data.decode("utf-8", errors="replace")
        except ApiException as exc:
            # No such pod or container, or no previous instance: no logs, as `kubectl logs` would say.
            if exc.status in (400, 404):
                return ""
            raise self._unavailable(exc) from exc
        except (HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        if since is None:
            return text
        lines = [line for line in text.splitlines() if not _logged_before(line, since)]
        if tail_lines:
            lines = lines[-tail_lines:]
        return "".join(f"{line}\n" for line in lines)


def _logged_before(line: str, since: datetime) -> bool:
    """Whether a ``--timestamps`` log line was written before ``since`` (lines without a timestamp are kept)."""
    head = line.split(" ", 1)[0]
    if not head[:1].isdigit():
        return False
    try:
        stamp = parse_time(head)
    except ValueError:
        return False
    return stamp is not None and stamp < since


DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
_QUERY_NAMES = {"label_selector": "labelSelector"}


def _items(body: Any) -> list[dict[str, Any]]:
    """The items of a ``*List`` reply, each with ``apiVersion`` and ``kind`` as ``kubectl get -o json`` prints."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise SourceUnavailable("kubernetes", "the API server's reply is not a list of objects")
    api_version = body.get("apiVersion")
    list_kind = str(body.get("kind") or "")
    kind = list_kind[:-4] if list_kind.endswith("List") else None
    items = []
    for item in body["items"]:
        if isinstance(item, dict):
            if api_version and "apiVersion" not in item:
                item = {"apiVersion": api_version, **item}
            if kind and "kind" not in item:
                item = {"apiVersion": item.get("apiVersion"), "kind": kind, **item}
            items.append(item)
    return items


def _http_status(exc: SourceUnavailable) -> int | None:
    """The HTTP status behind a :class:`SourceUnavailable` raised for an API error, if any."""
    return getattr(exc.__cause__, "status", None)


def _status_message(exc: Any) -> str:
    """The ``message`` of the ``Status`` object the API server sends with an error, else the raw body."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not body:
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return str(body).strip()[:300]
    if isinstance(status, dict) and status.get("message"):
        return str(status["message"])
    return str(body).strip()[:300]
