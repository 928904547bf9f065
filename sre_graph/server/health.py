"""``/health``: check every configured dependency for real, with short timeouts.

Each check is a real round trip: the incident store answers a query, Redis answers ``PING``, MongoDB
answers ``ping``, SigNoz answers ``GET /api/v1/health``, the Kubernetes API server lists nodes, the
model endpoint lists models. Dependencies that are not configured are not checked (and not listed).
Checks are blocking client calls, so each runs in a worker thread, all at once, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from sre_graph.server.store import IncidentStore
from sre_graph.settings import Settings

CHECK_TIMEOUT = 2.0
"""Seconds one dependency check may take before it counts as failed."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one dependency check."""

    name: str
    ok: bool
    detail: str
    latency_ms: float


def _redis(url: str, timeout: float) -> str:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
    return "PING answered"


def _mongodb(url: str, timeout: float) -> str:
    import pymongo

    millis = int(timeout * 1000)
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=millis, connectTimeoutMS=millis, socketTimeoutMS=millis)
    try:
        client.admin.command("ping")
    finally:
        client.close()
    return "ping answered"


def _http_get(url: str, headers: dict[str, str], timeout: float, what: str) -> str:
    response = httpx.get(url, headers=headers, timeout=timeout)
    if response.status_code >= 400:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return f"{what} answered {response.status_code}"


def _kubernetes(settings: Settings, timeout: float) -> str:
    from sre_graph.tools.kubernetes import LiveKubernetes

    nodes = LiveKubernetes(kubeconfig=settings.kubeconfig, context=settings.kube_context, timeout=timeout).list("nodes")
    return f"{len(nodes)} node(s) listed"


def checks_for(settings: Settings, store: IncidentStore | None) -> dict[str, Callable[[], str]]:
    """The checks the settings call for, by name; each returns a detail or raises."""
    t = CHECK_TIMEOUT
    checks: dict[str, Callable[[], str]] = {}
    if store is not None:
        checks["store"] = lambda: f"{len(store.list(limit=1))} incident(s) read"
    if settings.redis_url:
        url = settings.redis_url
        checks["redis"] = lambda: _redis(url, t)
    if settings.mongodb_url:
        mongo_url = settings.mongodb_url.get_secret_value()
        checks["mongodb"] = lambda: _mongodb(mongo_url, t)
    if settings.signoz_url:
        headers = {"SIGNOZ-API-KEY": settings.signoz_api_key.get_secret_value()} if settings.signoz_api_key else {}
        signoz = settings.signoz_url.rstrip("/") + "/api/v1/health"
        checks["signoz"] = lambda: _http_get(signoz, headers, t, "SigNoz")
    if settings.kubernetes_enabled or settings.kubeconfig:
        checks["kubernetes"] = lambda: _kubernetes(settings, t)
    if settings.model != "rules":
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        if settings.azure_endpoint:
            models = (f"{settings.azure_endpoint.rstrip('/')}/openai/models"
                      f"?api-version={settings.azure_api_version}")
            model_headers = {"api-key": key}
        else:
            models = (settings.base_url or "https://api.openai.com/v1").rstrip("/") + "/models"
            model_headers = {"Authorization": f"Bearer {key}"} if key else {}
        checks["model"] = lambda: _http_get(models, model_headers, t, "model endpoint")
    return checks


async def run_checks(checks: dict[str, Callable[[], str]], timeout: float = CHECK_TIMEOUT + 0.5) -> list[CheckResult]:
    """Run every check at once in worker threads; a check that raises or overruns ``timeout`` fails."""

    async def one(name: str, check: Callable[[], str]) -> CheckResult:
        begin = time.perf_counter()
        try:
            detail = await asyncio.wait_for(asyncio.to_thread(check), timeout)
            ok = True
        except TimeoutError:
            detail, ok = f"no answer within {timeout:g} s", False
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency is the health answer itself
            detail, ok = f"{type(exc).__name__}: {exc}"[:500], False
        return CheckResult(name, ok, detail, round((time.perf_counter() - begin) * 1000, 1))

    return list(await asyncio.gather(*(one(name, check) for name, check in checks.items())))
