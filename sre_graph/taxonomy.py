"""The root-cause taxonomy: every id the engine, the reports and the evals know.

This module is the single source of truth for root-cause ids (see
``shared/INCIDENT_FORMAT.md``). Adding an id is a change here and on that page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Domain = Literal["network", "database", "infrastructure", "application"]
DOMAINS: tuple[Domain, ...] = ("network", "database", "infrastructure", "application")
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RootCause:
    """One root-cause id with what a reader needs to understand it."""

    id: str
    domain: Domain | None
    """The domain the id belongs to; ``None`` for ``unknown`` (every domain)."""
    title: str
    """A short plain-words name for reports."""
    depth: int
    """How far down the causal chain the id sits: 3 is a mechanism (a limit hit,
    an expired certificate, a missing index), 2 a state that usually has a
    mechanism behind it (a crash loop), 1 a symptom other services observe
    (refused connections, timeouts). Ranking prefers deeper causes."""
    remediation: tuple[str, ...]
    """Generic first steps an SRE would take."""


_ROOT_CAUSES: tuple[RootCause, ...] = (
    # infrastructure
    RootCause("oom_killed", "infrastructure", "Container killed for exceeding its memory limit (OOMKilled)", 3,
              ("Raise the container memory limit or reduce the workload's memory use",
               "Check recent changes to heap/cache settings or traffic that grew memory")),
    RootCause("crash_loop", "infrastructure", "Container crash-looping (CrashLoopBackOff)", 2,
              ("Read the previous container's logs for the exit reason",
               "Roll back the change that made the container exit")),
    RootCause("image_pull_failure", "infrastructure", "Image cannot be pulled (ErrImagePull/ImagePullBackOff)", 3,
              ("Fix the image reference or tag in the deployment",
               "Check registry credentials (imagePullSecrets) and registry reachability")),
    RootCause("unschedulable", "infrastructure", "Pods cannot be scheduled (FailedScheduling)", 3,
              ("Free or add capacity, or lower the pods' resource requests",
               "Check node selectors, taints/tolerations and affinity rules")),
    RootCause("node_not_ready", "infrastructure", "Node NotReady", 3,
              ("Cordon and drain the node; check kubelet and the node's health",
               "Make sure workloads have replicas on other nodes")),
    RootCause("node_pressure", "infrastructure", "Node under memory/disk/PID pressure (evictions)", 3,
              ("Free resources on the node (disk, memory) or add capacity",
               "Set requests/limits so pods are not evicted")),
    RootCause("cpu_throttling", "infrastructure", "CPU throttling at the container's CPU limit", 3,
              ("Raise or remove the CPU limit for the container",
               "Scale out the deployment to spread the load")),
    RootCause("probe_failure", "infrastructure", "Liveness/readiness probes failing", 2,
              ("Fix the probe (path, port, timeout) or the slow startup it trips on",
               "Raise initialDelaySeconds/timeoutSeconds if the app is slow to start")),
    RootCause("bad_rollout", "infrastructure", "A rollout that broke the workload", 3,
              ("Roll back the deployment (kubectl rollout undo)",
               "Fix the manifest change before rolling forward")),
    RootCause("volume_failure", "infrastructure", "Volume cannot be attached or mounted", 3,
              ("Check the PVC/PV and the storage driver; detach the volume from the old node",)),
    RootCause("autoscaling_limit", "infrastructure", "Autoscaler at its maximum replicas", 3,
              ("Raise the HPA's maxReplicas or add capacity",
               "Find why load rose beyond the planned maximum")),
    # database
    RootCause("missing_index", "database", "Query without a usable index (collection scan)", 3,
              ("Create an index that matches the query's filter and sort",
               "Check the query change that stopped using the existing index")),
    RootCause("lock_contention", "database", "Lock contention on the database", 3,
              ("Find and stop the operation holding the lock",
               "Move long write operations off peak or break them into batches")),
    RootCause("replication_lag", "database", "Replica set members lagging behind the primary", 3,
              ("Reduce write load or heavy reads on the lagging secondary",
               "Check the secondary's disk and network; avoid secondary reads until it catches up")),
    RootCause("connection_exhaustion", "database", "Database connections exhausted", 3,
              ("Cap the clients' connection pools (maxPoolSize) and fix connection leaks",
               "Raise the server's connection limit only once the clients are bounded")),
    RootCause("storage_full", "database", "Database storage full", 3,
              ("Free disk space or grow the volume", "Compact or archive old data")),
    RootCause("long_running_operation", "database", "A long-running database operation", 3,
              ("Kill the runaway operation (db.killOp) and set maxTimeMS on such queries",)),
    RootCause("failover", "database", "Replica set failover (primary changed)", 3,
              ("Check why the old primary stepped down; make clients retry writes",)),
    RootCause("cache_pressure", "database", "WiredTiger cache pressure (eviction stalls)", 3,
              ("Grow the cache or the working-set memory, or reduce the working set",)),
    # network
    RootCause("tls_certificate_expired", "network", "Expired TLS certificate", 3,
              ("Renew the certificate and reload the service that serves it",
               "Check why automatic renewal (cert-manager) did not run")),
    RootCause("dns_failure", "network", "DNS resolution failures", 3,
              ("Check the DNS name and CoreDNS health",
               "Fix the service name or the DNS configuration that changed")),
    RootCause("connection_refused", "network", "Connections refused by the upstream", 1,
              ("Check that the upstream is running and listening on the port clients use",)),
    RootCause("network_policy_block", "network", "Traffic blocked by a NetworkPolicy", 3,
              ("Amend or roll back the NetworkPolicy so the client's traffic is allowed",)),
    RootCause("no_endpoints", "network", "Service has no ready endpoints", 2,
              ("Check the service selector against the pods' labels and their readiness",)),
    RootCause("upstream_timeout", "network", "Upstream requests timing out", 1,
              ("Find why the upstream is slow; set timeouts and retries with backoff",)),
    RootCause("rate_limited", "network", "Requests rate-limited by a dependency (HTTP 429)", 2,
              ("Reduce the request rate (batching, backoff) or raise the quota",)),
    # application
    RootCause("error_spike_after_deploy", "application", "Error spike after a deploy", 3,
              ("Roll back to the previous version", "Fix the regression before redeploying")),
    RootCause("dependency_outage", "application", "An external dependency is failing", 1,
              ("Fail over or degrade gracefully; contact the dependency's owner",)),
    RootCause("memory_leak", "application", "Memory leak in the application", 3,
              ("Restart to relieve pressure, then profile the heap and fix the leak",)),
    RootCause("config_error", "application", "A configuration error", 3,
              ("Correct or roll back the configuration change",)),
    RootCause("resource_leak", "application", "Leaked resources (connections, file descriptors, threads)", 3,
              ("Restart to relieve pressure, then fix the leak (close connections/handles)",)),
    RootCause(UNKNOWN, None, "Inconclusive: the evidence does not decide", 0,
              ("Widen the time window or check the sources that were unavailable",)),
)

ROOT_CAUSES: dict[str, RootCause] = {rc.id: rc for rc in _ROOT_CAUSES}
ROOT_CAUSE_IDS: frozenset[str] = frozenset(ROOT_CAUSES)


def get(root_cause_id: str) -> RootCause:
    """Return the taxonomy entry for an id; raise ``KeyError`` naming it if unknown."""
    try:
        return ROOT_CAUSES[root_cause_id]
    except KeyError:
        raise KeyError(f"unknown root-cause id {root_cause_id!r}") from None


def domain_of(root_cause_id: str) -> Domain | None:
    """The domain an id belongs to (``None`` for ``unknown``)."""
    return get(root_cause_id).domain


def ids_for(domain: Domain) -> list[str]:
    """All ids of one domain, in taxonomy order."""
    return [rc.id for rc in _ROOT_CAUSES if rc.domain == domain]
