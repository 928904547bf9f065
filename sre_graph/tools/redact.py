"""Secrets never leave a toolset: every value a source returns is redacted before anything else sees it.

Structured data is redacted by key (an env var or field whose name looks like a
password, token, secret or key loses its value) and every string by pattern
(credentials in URLs and connection strings, bearer tokens, cloud access keys,
private keys, JWTs, well-known token formats, ``key=value`` pairs with secret
names).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"

SECRET_NAME = re.compile(
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_.]?key|apikey|access[-_.]?key|private[-_.]?key|"
    r"client[-_.]?secret|credential|authorization|session[-_.]?id|cookie|signing[-_.]?key|dsn|"
    r"connection[-_.]?string|conn[-_.]?str|webhook[-_.]?url|encryption[-_.]?key|salt)",
    re.IGNORECASE,
)
"""Names whose values are secrets (env vars, JSON keys, query parameters)."""

_NOT_SECRET_NAMES = re.compile(r"^(?:token_?type|tokens?_?(?:count|used|total)|.*_?(?:tokens|token_count)|"
                               r"prompt_tokens|completion_tokens|max_tokens|keysExamined|key|keys|secretName|"
                               r"secretKeyRef|secretRef|passwordPolicy)$", re.IGNORECASE)

_PATTERNS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    # PEM private keys (whole block)
    (re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )*PRIVATE KEY-----|$)"),
     f"-----BEGIN PRIVATE KEY----- {MASK} -----END PRIVATE KEY-----"),
    # user:password@ in URLs / connection strings (mongodb, postgres, redis, amqp, http...)
    (re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s\"']*):(?P<pw>[^@/\s\"']+)@", re.I),
     r"\g<scheme>\g<user>:" + MASK + "@"),
    # Authorization headers and bearer/basic tokens
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.I), r"\1 " + MASK),
    # JWTs
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"), MASK),
    # AWS access key ids and secret keys
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"(aws_?secret_?access_?key\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{40}", re.I), r"\1" + MASK),
    # Google API keys, GitHub, GitLab, Slack, Stripe, SendGrid, npm tokens
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), MASK),
    (re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}\b"), MASK),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"), MASK),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), MASK),
    (re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"), MASK),
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\b"), MASK),
    (re.compile(r"\bnpm_[A-Za-z0-9]{30,}\b"), MASK),
    (re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b"), MASK),
    # key=value (no spaces), "key": "value" (quoted key), and key: value where the key ENDS in a secret word
    (re.compile(r"(?P<key>\b[\w.-]*" + SECRET_NAME.pattern + r"[\w.-]*=)(?P<q>)(?P<val>[^\s\"',;&}]{3,})", re.I),
     None),
    (re.compile(r"(?P<key>[\"'][\w.-]*" + SECRET_NAME.pattern + r"[\w.-]*[\"']\s*:\s*)(?P<q>[\"'])(?P<val>[^\"']{3,})"
                r"(?P=q)", re.I), None),
    (re.compile(r"(?P<key>\b[\w.-]*(?:password|passwd|secret|token|api[-_]?key|access[-_]?key)\s*:\s*)(?P<q>)"
                r"(?P<val>[^\s\"',;&}]{3,})", re.I), None),
    # --password=xxx / --token xxx command-line flags
    (re.compile(r"(--?[\w-]*" + SECRET_NAME.pattern + r"[\w-]*[= ])(?!-)(\S{3,})", re.I), r"\1" + MASK),
)


_GATES: tuple[tuple[str, ...] | None, ...] = (
    ("PRIVATE KEY",), ("://",), ("bearer", "basic", "token"), ("eyJ",),
    ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA"), ("aws",), ("AIza",), ("_",), ("glpat-",), ("xox",),
    ("_live_", "_test_"), ("SG.",), ("npm_",), ("sk-",), None, None, None, None,
)
"""Cheap substring checks that must hold before a pattern can match (``None``: a secret name must occur)."""


def redact_text(text: str) -> str:
    """Replace every secret-looking substring of ``text``."""
    if not text or len(text) < 8:
        return text
    lowered = text.lower()
    named = SECRET_NAME.search(text) is not None
    for (pattern, replacement), gate in zip(_PATTERNS, _GATES, strict=True):
        if gate is None:
            if not named:
                continue
        elif not any((g.lower() in lowered) for g in gate):
            continue
        text = pattern.sub(replacement if replacement is not None else _mask_value, text)
    return text


_REFERENCE_KEY = re.compile(r"^[\"']?(?:secret|secret[-_]?name|secret[-_]?ref|credentials?[-_]?secret)[\"']?\s*[=:]",
                            re.IGNORECASE)
_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _mask_value(match: re.Match[str]) -> str:
    """Mask a secret-named key's value, except where the key names a Secret object (``secret: db-creds``)."""
    key, quote, value = match.group("key"), match.group("q") or "", match.group("val")
    if _REFERENCE_KEY.match(key) and _OBJECT_NAME.match(value) and "-" in value:
        return match.group(0)
    return f"{key}{quote}{MASK}{quote}"


def _secret_key(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not _NOT_SECRET_NAMES.match(name)


def redact(value: Any) -> Any:
    """Redact a JSON-like value recursively: secret-named keys by name, every string by pattern.

    Kubernetes env lists (``[{"name": "DB_PASSWORD", "value": "..."}]``) are redacted by the entry's name.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact(v) for v in value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        env_secret = isinstance(value.get("name"), str) and "value" in value and _secret_key(value["name"])
        for key, item in value.items():
            if env_secret and key == "value":
                out[key] = MASK
            elif isinstance(key, str) and _secret_key(key) and isinstance(item, (str, int, float)) and item != "":
                reference = (_REFERENCE_KEY.match(f"{key}:") and isinstance(item, str) and _OBJECT_NAME.match(item)
                             and "-" in item)
                out[key] = item if reference else MASK
            else:
                out[key] = redact(item)
        return out
    return value


class Redacted:
    """Wraps a data-source port so that everything it returns is redacted. Nothing can switch it off."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self._memo: dict[int, tuple[Any, Any]] = {}

    @property
    def wrapped(self) -> Any:
        """The port underneath (for health checks, not for data)."""
        return self._port

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._port, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if isinstance(result, list):
                return [self._once(item) for item in result]
            return self._once(result)

        call.__name__ = name
        return call

    def _once(self, item: Any) -> Any:
        """Redact an item; a recorded source hands back the same objects again, redacted only once."""
        if not isinstance(item, (dict, list)):
            return redact(item)
        hit = self._memo.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        clean = redact(item)
        self._memo[id(item)] = (item, clean)
        return clean
