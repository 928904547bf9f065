"""Who may call what: API bearer tokens (JWT or static keys), the webhooks' shared secret, Slack's signature.

* API routes take ``Authorization: Bearer <JWT>`` (HS256 with ``jwt_secret``, RS256 with
  ``jwt_public_key``; ``exp`` required; a ``role`` claim: ``admin`` and ``operator`` may write, ``viewer``
  may read) or a static API key from ``api_keys`` (``X-API-Key`` or ``Authorization: Bearer``; role
  ``operator``).
* The Alertmanager and SigNoz webhooks take the shared ``webhook_secret`` (``Authorization: Bearer`` or
  ``X-Webhook-Secret``); without one configured they take API credentials instead.
* With no API keys, no JWT key and no webhook secret configured the service is *open*: every route answers
  without credentials (the service logs a warning at startup).

Failures raise :class:`fastapi.HTTPException`: 401 with a ``detail`` saying what is missing or wrong, or
403 when the caller is known but its role does not allow the route. Secrets are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt
from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from sre_graph.settings import Settings

logger = logging.getLogger(__name__)

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "operator", "viewer")
WRITE_ROLES: frozenset[str] = frozenset({"admin", "operator"})
"""Roles that may start investigations."""
READ_ROLES: frozenset[str] = frozenset(ROLES)
"""Roles that may read incidents."""

bearer_scheme = HTTPBearer(auto_error=False, description="A JWT with `exp` and a `role` claim, or a static API key.")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="A static API key (role operator).")
webhook_secret_scheme = APIKeyHeader(name="X-Webhook-Secret", auto_error=False,
                                     description="The webhooks' shared secret (or send it as a bearer token).")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    subject: str
    """The JWT's ``sub``, ``api-key``, ``webhook`` or ``anonymous``."""
    role: str
    method: Literal["jwt", "api_key", "webhook_secret", "open"]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _load_public_key(value: str | None) -> str | None:
    """PEM text as given, or read from the file the setting names."""
    if not value:
        return None
    if "-----BEGIN" in value:
        return value
    try:
        return Path(value).expanduser().read_text()
    except OSError as exc:
        raise ValueError(f"SRE_GRAPH_JWT_PUBLIC_KEY is neither PEM text nor a readable file: {exc}") from exc


class Authenticator:
    """Checks credentials against the settings; built once per app."""

    def __init__(self, settings: Settings) -> None:
        """Read the keys and secrets from ``settings``.

        Raises:
            ValueError: ``jwt_public_key`` names a file that cannot be read.
        """
        self._api_keys = [key.get_secret_value() for key in settings.api_keys if key.get_secret_value()]
        self._jwt_secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._jwt_public_key = _load_public_key(settings.jwt_public_key)
        self._jwt_algorithms = list(settings.jwt_algorithms)
        self._jwt_audience = settings.jwt_audience
        self._webhook_secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None

    @property
    def api_configured(self) -> bool:
        """Whether any API credential (key or JWT key) is configured."""
        return bool(self._api_keys or self._jwt_secret or self._jwt_public_key)

    @property
    def open(self) -> bool:
        """No API keys, no JWT key and no webhook secret: every route answers without credentials."""
        return not (self.api_configured or self._webhook_secret)

    # ------------------------------------------------------------------ API routes

    def api(self, bearer: str | None, api_key: str | None, *, write: bool) -> Principal:
        """Authenticate an API call and check its role.

        Args:
            bearer: The ``Authorization: Bearer`` credential, if any.
            api_key: The ``X-API-Key`` header, if any.
            write: The route changes state (``admin`` or ``operator`` needed); else ``viewer`` suffices.

        Returns:
            The caller.

        Raises:
            HTTPException: 401 for missing or bad credentials, 403 for a role that may not call the route.
        """
        if self.open:
            return Principal("anonymous", "admin", "open")
        if not self.api_configured:
            raise _unauthorized("API access is not configured on this server (set SRE_GRAPH_API_KEYS, "
                                "SRE_GRAPH_JWT_SECRET or SRE_GRAPH_JWT_PUBLIC_KEY)")
        if api_key is not None:
            if not self._is_api_key(api_key):
                raise _unauthorized("invalid API key")
            principal = Principal("api-key", "operator", "api_key")
        elif bearer is not None:
            if self._is_api_key(bearer):
                principal = Principal("api-key", "operator", "api_key")
            elif bearer.count(".") == 2:
                principal = self._jwt(bearer)
            else:
                raise _unauthorized("invalid bearer token: neither a known API key nor a JWT")
        else:
            raise _unauthorized("missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'")
        allowed = WRITE_ROLES if write else READ_ROLES
        if principal.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"role {principal.role!r} may not {'write' if write else 'read'} here "
                                       f"(allowed: {', '.join(sorted(allowed))})")
        return principal

    def _is_api_key(self, candidate: str) -> bool:
        matched = False
        for key in self._api_keys:  # compare against every key, in constant time each
            matched |= hmac.compare_digest(candidate.encode(), key.encode())
        return matched

    def _jwt(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"malformed JWT: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self._jwt_algorithms:
            raise _unauthorized(f"JWT algorithm {algorithm!r} is not accepted "
                                f"(accepted: {', '.join(self._jwt_algorithms)})")
        key = self._jwt_secret if str(algorithm).startswith("HS") else self._jwt_public_key
        if not key:
            raise _unauthorized(f"no key is configured for JWT algorithm {algorithm}")
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm], options={"require": ["exp"]},
                                audience=self._jwt_audience)
        except jwt.ExpiredSignatureError:
            raise _unauthorized("token expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized(f"token lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidSignatureError:
            raise _unauthorized("token signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized(f"invalid token: {exc}") from None
        role = claims.get("role")
        if role not in ROLES:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"token role {role!r} is not one of {', '.join(ROLES)}" if role is not None
                                else f"token has no 'role' claim (expected one of {', '.join(ROLES)})")
        return Principal(str(claims.get("sub") or "jwt"), role, "jwt")

    # ------------------------------------------------------------------ webhooks

    def webhook(self, bearer: str | None, secret_header: str | None, api_key: str | None) -> Principal:
        """Authenticate an Alertmanager or SigNoz webhook.

        Args:
            bearer: The ``Authorization: Bearer`` credential, if any.
            secret_header: The ``X-Webhook-Secret`` header, if any.
            api_key: The ``X-API-Key`` header (used only when no webhook secret is configured).

        Returns:
            The caller.

        Raises:
            HTTPException: 401 when the secret is missing or wrong.
        """
        if self.open:
            return Principal("anonymous", "admin", "open")
        if not self._webhook_secret:  # the API's credentials guard the webhooks instead
            return self.api(bearer, api_key, write=True)
        given = secret_header if secret_header is not None else bearer
        if given is None:
            raise _unauthorized("missing webhook secret: send 'Authorization: Bearer <secret>' or "
                                "'X-Webhook-Secret: <secret>'")
        if not hmac.compare_digest(given.encode(), self._webhook_secret.encode()):
            raise _unauthorized("invalid webhook secret")
        return Principal("webhook", "operator", "webhook_secret")


def authenticator(request: Request) -> Authenticator:
    """The app's :class:`Authenticator` (set up in its lifespan).

    Raises:
        HTTPException: 503 before the lifespan has started the service.
    """
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting")
    return service.auth


def _credential(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    return credentials.credentials if credentials is not None else None


async def require_reader(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # noqa: B008
    api_key: str | None = Security(api_key_scheme),
) -> Principal:
    """Dependency: a caller allowed to read (any role)."""
    return authenticator(request).api(_credential(bearer), api_key, write=False)


async def require_writer(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # noqa: B008
    api_key: str | None = Security(api_key_scheme),
) -> Principal:
    """Dependency: a caller allowed to start investigations (admin or operator)."""
    return authenticator(request).api(_credential(bearer), api_key, write=True)


async def require_webhook(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Security(bearer_scheme),  # noqa: B008
    secret: str | None = Security(webhook_secret_scheme),
    api_key: str | None = Security(api_key_scheme),
) -> Principal:
    """Dependency: the webhooks' shared secret."""
    return authenticator(request).webhook(_credential(bearer), secret, api_key)
