"""Fixtures for the live Kubernetes tests: a real kube-apiserver, once per session.

``tests/conftest.py`` pulls these in with ``from tests.conftest_kube import *  # noqa``; only the
names in ``__all__`` are exported, so nothing here shadows the conftest's own hooks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from tests.kube import KubeCluster, KubeSetupError, start_cluster

__all__ = ["kube_apiserver"]


def _server_logs_key() -> object | None:
    """``tests/conftest.py``'s stash key for server logs (attached to failing tests' reports), if loaded."""
    for name in ("conftest", "tests.conftest"):
        key = getattr(sys.modules.get(name), "SERVER_LOGS", None)
        if key is not None:
            return key
    return None


@pytest.fixture(scope="session")
def kube_apiserver(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """etcd + kube-apiserver v1.20.2 (RBAC, token auth, TLS) + a fake kubelet, on loopback; torn down at the end.

    Yields a :class:`tests.kube.KubeCluster`: ``url``, ``admin_kubeconfig``, ``agent_kubeconfig`` (a
    ServiceAccount token bound by ``deploy/rbac.yaml``), ``nobody_kubeconfig``. When the binary is not
    cached yet, ``scripts/provision-kube.sh`` builds it (minutes); if that fails the tests FAIL, never skip.
    """
    workdir = tmp_path_factory.mktemp("kube")
    key = _server_logs_key()
    if key is not None:
        request.config.stash.setdefault(key, {})["kube_apiserver"] = workdir / "kube-apiserver.log"
    started = time.monotonic()
    try:
        cluster_cm = start_cluster(workdir)
        cluster = cluster_cm.__enter__()
    except KubeSetupError as exc:
        pytest.fail(f"kube-apiserver unavailable: {exc}", pytrace=False)
    cluster.timings["fixture_s"] = round(time.monotonic() - started, 2)
    try:
        yield cluster
    finally:
        cluster_cm.__exit__(None, None, None)
