"""Signals an SRE reads, extracted from raw data: log signatures, series trends, object times.

Nothing here knows a particular incident: patterns are the standard wording of
Go, Java, Python, Node and Envoy clients, the kubelet and MongoDB.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sre_graph.timeutil import parse_time


@dataclass(frozen=True)
class Signature:
    """A class of log line, with the root cause it points at."""

    name: str
    root_cause: str
    pattern: re.Pattern[str]
    label: str
    """How the report names the signal."""


def _re(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


SIGNATURES: tuple[Signature, ...] = (
    Signature("tls", "tls_certificate_expired",
              _re(r"x509:|certificate has expired|certificate (?:is )?expired|cert(?:ificate)?_has_expired|"
                  r"ssl.*certificate.*(?:expired|verify failed)|certificate verify failed|PKIX path validation"),
              "TLS certificate errors"),
    Signature("dns", "dns_failure",
              _re(r"NXDOMAIN|no such host|Name or service not known|Temporary failure in name resolution|"
                  r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN)|server misbehaving|could not resolve host|"
                  r"UnknownHostException|name resolution failed|SERVFAIL"),
              "DNS resolution failures"),
    Signature("refused", "connection_refused",
              _re(r"connection refused|ECONNREFUSED|connect: connection refused|Connection refused"),
              "connections refused"),
    Signature("timeout", "upstream_timeout",
              _re(r"deadline exceeded|DEADLINE_EXCEEDED|ETIMEDOUT|timed out|timeout exceeded|"
                  r"context deadline|i/o timeout|upstream request timeout|request timeout|"
                  r"ReadTimeout|SocketTimeoutException|\btimeout\b"),
              "timeouts"),
    Signature("rate", "rate_limited",
              _re(r"\b429\b|too many requests|rate[- ]?limit|quota exceeded|throttled by|RESOURCE_EXHAUSTED"),
              "rate limiting (HTTP 429)"),
    Signature("pool", "connection_exhaustion",
              _re(r"WaitQueueTimeout|WaitQueueFull|connection pool (?:is )?(?:exhausted|full|timeout)|"
                  r"timed out while checking out a connection|too many (?:open )?connections|"
                  r"connection limit|max(?:imum)? ?(?:pool ?size|connections)|pool exhausted|"
                  r"remaining connection slots"),
              "connection pool exhaustion"),
    Signature("failover", "failover",
              _re(r"NotWritablePrimary|not master|NotPrimary|NotMaster|primary stepped down|stepping down|"
                  r"InterruptedDueToReplStateChange|PrimarySteppedDown|no primary"),
              "primary changes"),
    Signature("disk", "storage_full",
              _re(r"No space left on device|ENOSPC|disk (?:is )?full|OutOfDiskSpace|out of disk|"
                  r"storage (?:is )?full|insufficient (?:disk|storage)"),
              "disk full errors"),
    Signature("rofs", "volume_failure",
              _re(r"Read-only file system|EROFS|read-only filesystem|Remounting filesystem read-only|"
                  r"I/O error|Input/output error|stale file handle|Transport endpoint is not connected"),
              "volume errors (read-only or failing filesystem)"),
    Signature("maxtime", "long_running_operation",
              _re(r"operation exceeded time limit|MaxTimeMSExpired|exceeded time limit|query timed out"),
              "database operations exceeding their time limit"),
    Signature("lock", "lock_contention",
              _re(r"lock timeout|LockTimeout|waiting for lock|lock wait|deadlock|WriteConflict"),
              "lock waits"),
    Signature("config", "config_error",
              _re(r"invalid config|configuration (?:error|invalid)|config(?:uration)? (?:file )?not found|"
                  r"missing required (?:config|configuration|env|environment|setting|field|key|property)|"
                  r"environment variable \S+ (?:is )?(?:not set|missing|required|empty)|"
                  r"(?:unknown|unrecognized|invalid) (?:config(?:uration)? )?(?:option|flag|key|setting|property)|"
                  r"could not (?:load|parse|read) config|failed to (?:load|parse) (?:config|settings)|"
                  r"invalid value for|yaml: (?:unmarshal|line)|json: cannot unmarshal|"
                  r"(?:configmap|secret) \"?[\w.-]+\"? not found|MissingRequired|ConfigurationException|"
                  r"ValidationError.*(?:config|settings)"),
              "configuration errors"),
    Signature("fd", "resource_leak",
              _re(r"too many open files|EMFILE|file descriptors? (?:exhausted|limit)|"
                  r"unable to create (?:new )?native thread|can't start new thread|goroutine leak|"
                  r"resource temporarily unavailable"),
              "resource exhaustion (file descriptors, threads)"),
    Signature("memory", "memory_leak",
              _re(r"OutOfMemoryError|Java heap space|GC overhead limit|heap out of memory|"
                  r"JavaScript heap out of memory|MemoryError|cannot allocate memory|out of memory"),
              "out-of-memory errors"),
    Signature("5xx", "dependency_outage",
              _re(r"\b(?:502|503|504)\b|bad gateway|service unavailable|gateway timeout|upstream connect error|"
                  r"no healthy upstream"),
              "5xx responses from a dependency"),
)

SIGNATURE_BY_NAME = {s.name: s for s in SIGNATURES}

_TARGET_PATTERNS = (
    re.compile(r"dial tcp (?:\[[^\]]+\]|[\w.-]+):(\d+)"),
    re.compile(r"(?:dial tcp|connect(?:ing)? to|lookup|connection to|calling|call to|request to|host|upstream)"
               r"\s+(?:host\s+)?[\"']?((?:https?|mongodb(?:\+srv)?|grpc|redis|amqp|postgres)://)?"
               r"([a-z0-9][a-z0-9.-]*[a-z0-9])(?::\d+)?", re.IGNORECASE),
    re.compile(r"(?:https?|grpc|mongodb(?:\+srv)?)://(?:[^@/\s]+@)?([a-z0-9][a-z0-9.-]*[a-z0-9])", re.IGNORECASE),
    re.compile(r"\b([a-z0-9][a-z0-9-]*)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?\b", re.IGNORECASE),
)

_STOP_TARGETS = {"tcp", "the", "to", "server", "host", "upstream", "localhost", "127.0.0.1", "service", "http",
                 "https", "on", "a", "an", "remote", "peer", "backend", "database", "db", "failed", "failure",
                 "error", "errors", "timeout", "timed", "with", "after", "while", "because", "due", "returned",
                 "refused", "is", "was", "not", "no", "of", "for", "in", "at", "from", "and", "or", "reset",
                 "unavailable", "closed", "exceeded", "deadline", "context", "request", "requests", "call", "calls",
                 "rate", "limit", "limited", "quota", "retry", "retrying", "attempt"}


def extract_target(line: str) -> str | None:
    """The host or service a failing call went to, if the line names one (first DNS label)."""
    for pattern in _TARGET_PATTERNS:
        for match in pattern.finditer(line):
            groups = [g for g in match.groups() if g and not g.endswith("://") and not g.isdigit()]
            if not groups:
                continue
            host = groups[0].lower().strip(".")
            if host in _STOP_TARGETS or re.fullmatch(r"[\d.]+", host):
                continue
            return host
    return None


def host_to_service(host: str) -> str:
    """``orders-api.shop.svc.cluster.local`` → ``orders-api``; external hosts stay whole."""
    if ".svc" in host or host.count(".") == 1 and not host.endswith((".com", ".io", ".net", ".org")):
        return host.split(".", 1)[0]
    return host


_QUIET = re.compile(r"(?:^|[\s\[\"'])(?:INFO|DEBUG|TRACE|NOTICE)(?:[\s\]\"':]|$)"
                    r"|\"level\":\s*(?:\"(?:info|debug|trace)\"|"
                    r"[123]0\b)|\blevel=(?:info|debug|trace)\b", re.IGNORECASE)


def is_quiet(text: str) -> bool:
    """Whether a raw log line says it is informational (INFO/DEBUG), as container logs carry no severity field."""
    return bool(_QUIET.search(text[:200]))


def steady_since(times: list[datetime], alert_time: datetime, now: datetime) -> bool:
    """Whether events ran at an even rate from well before the alert, with no onset near it.

    The events must start 20 minutes or more before the alert, and the second half of their span must not
    hold clearly more of them than the first: a background condition, not what changed.
    """
    if len(times) < 6:
        return False
    ordered = sorted(times)
    if ordered[0] > alert_time - timedelta(minutes=20):
        return False
    middle = ordered[0] + (now - ordered[0]) / 2
    first = sum(1 for t in ordered if t < middle)
    return len(ordered) - first < 1.5 * max(first, 1)


def volume_factor(count: int) -> float:
    """Down-weights a handful of lines: 4 lines are a hint, 15 or more a pattern."""
    return min(1.0, 0.4 + count / 25)


_THREADS = re.compile(r"native thread|new thread", re.IGNORECASE)


def classify_line(text: str) -> list[Signature]:
    """Every signature a log line matches (a JVM that cannot create threads is out of threads, not heap)."""
    found = [s for s in SIGNATURES if s.pattern.search(text)]
    if _THREADS.search(text):
        found = [s for s in found if s.name != "memory"]
    return found


@dataclass
class LineGroup:
    """Occurrences of one signature from one service (toward one target)."""

    signature: Signature
    service: str
    target: str | None
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    samples: list[str] = field(default_factory=list)
    before: int = 0
    """Occurrences in the baseline window before the incident window."""

    times: list[datetime] = field(default_factory=list)

    def add(self, ts: datetime | None, text: str, *, baseline: bool) -> None:
        if baseline:
            self.before += 1
            return
        self.count += 1
        if ts is not None:
            self.times.append(ts)
            self.first = ts if self.first is None or ts < self.first else self.first
            self.last = ts if self.last is None or ts > self.last else self.last
        if len(self.samples) < 3 and text not in self.samples:
            self.samples.append(text[:300])


def group_lines(
    lines: Iterable[tuple[datetime | None, str, str]], baseline_end: datetime
) -> dict[tuple[str, str, str | None], LineGroup]:
    """Group ``(time, service, text)`` lines by (signature, service, target); split baseline vs incident."""
    groups: dict[tuple[str, str, str | None], LineGroup] = {}
    for ts, service, text in lines:
        for sig in classify_line(text):
            target = extract_target(text)
            target = host_to_service(target) if target else None
            key = (sig.name, service, target)
            group = groups.setdefault(key, LineGroup(sig, service, target))
            group.add(ts, text, baseline=ts is not None and ts < baseline_end)
    return groups


# ------------------------------------------------------------------ series


@dataclass
class SeriesStats:
    """Summary of one metric series around the alert."""

    before: float | None
    after: float | None
    first: float
    last: float
    peak: float
    monotonic_share: float
    """Share of steps that did not decrease (1.0 = steady growth)."""
    span_minutes: float
    change_at: datetime | None
    """First point where the value left the baseline band."""
    climb: Climb | None = None
    """The longest gradual climb (a leak's shape), if the series has one."""

    points: list[tuple[datetime, float]] = field(default_factory=list, repr=False)

    def first_at_or_above(self, level: float) -> datetime | None:
        """When the series first reached ``level``."""
        return next((t for t, v in self.points if v >= level), None)

    @property
    def ratio(self) -> float | None:
        """after / before (``None`` if not computable)."""
        if self.before in (None, 0) or self.after is None:
            return None
        return self.after / self.before


def series_stats(values: list[dict[str, Any]], split: datetime) -> SeriesStats | None:
    """Baseline (before ``split``) vs incident (after) summary of a v5 series' values."""
    parsed = sorted(
        ((parse_time(v.get("timestamp")), float(v["value"])) for v in values
         if v.get("value") is not None and v.get("timestamp") is not None),
        key=lambda p: p[0] or split,
    )
    points = [(t, v) for t, v in parsed if t is not None]
    if len(points) < 2:
        return None
    before = [v for t, v in points if t < split]
    after = [v for t, v in points if t >= split]
    steps = [b - a for (_, a), (_, b) in zip(points, points[1:], strict=False)]
    nondecreasing = sum(1 for s in steps if s >= 0) / len(steps)
    base = statistics.median(before) if before else None
    spread = (statistics.pstdev(before) if len(before) > 1 else 0.0) if before else 0.0
    change_at = None
    if base is not None:
        band = max(spread * 3, abs(base) * 0.25, 1e-9)
        change_at = next((t for t, v in points if abs(v - base) > band), None)
    return SeriesStats(
        before=base,
        after=statistics.median(after) if after else None,
        first=points[0][1],
        last=points[-1][1],
        peak=max(v for _, v in points),
        monotonic_share=nondecreasing,
        span_minutes=(points[-1][0] - points[0][0]).total_seconds() / 60,
        change_at=change_at,
        climb=longest_climb(points),
        points=points,
    )


@dataclass
class Climb:
    """A stretch where a value rose gradually: most steps up, no single step carrying the rise."""

    start: datetime
    end: datetime
    first: float
    last: float
    up_share: float
    segments: int
    """How many climbs the series has (a leak that is reset by restarts climbs again each time)."""
    since: datetime | None = None
    """When the earliest climb began."""

    @property
    def minutes(self) -> float:
        """Length of the climb."""
        return (self.end - self.start).total_seconds() / 60


def longest_climb(points: list[tuple[datetime, float]], *, drop: float = 0.3) -> Climb | None:
    """The longest gradual climb, splitting the series where it drops by more than ``drop`` (restarts).

    A climb needs at least 5 points over 45 minutes or more, at least 70% of its steps up, a rise of 30% or
    more, and no single step carrying more than 40% of the rise: a step change (a deploy, a load shift) is
    not a climb.
    """
    segments: list[list[tuple[datetime, float]]] = [[]]
    for point in points:
        current = segments[-1]
        if current and current[-1][1] > 0 and point[1] < current[-1][1] * (1 - drop):
            segments.append([])
        segments[-1].append(point)
    climbs: list[Climb] = []
    for seg in segments:
        if len(seg) < 5:
            continue
        steps = [b[1] - a[1] for a, b in zip(seg, seg[1:], strict=False)]
        rise = seg[-1][1] - seg[0][1]
        if rise <= 0 or seg[0][1] <= 0:
            continue
        up = sum(1 for s in steps if s > 0) / len(steps)
        minutes = (seg[-1][0] - seg[0][0]).total_seconds() / 60
        if up >= 0.7 and minutes >= 45 and seg[-1][1] / seg[0][1] >= 1.3 and max(steps) <= 0.4 * rise:
            climbs.append(Climb(seg[0][0], seg[-1][0], seg[0][1], seg[-1][1], up, 0))
    if not climbs:
        return None
    best = max(climbs, key=lambda c: c.minutes)
    best.segments = len(climbs)
    best.since = climbs[0].start
    return best


def label_map(series: dict[str, Any]) -> dict[str, str]:
    """v5 series labels as a flat dict."""
    return {(lab.get("key") or {}).get("name", ""): str(lab.get("value")) for lab in series.get("labels") or []}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
