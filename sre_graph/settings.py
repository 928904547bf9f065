"""One settings object reads the environment (``SRE_GRAPH_`` prefix); explicit arguments win."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. Build with ``Settings(**explicit)``: keywords beat the environment."""

    model_config = SettingsConfigDict(env_prefix="SRE_GRAPH_", extra="ignore")

    model: str = "rules"
    """``rules`` (the deterministic engine) or an OpenAI-compatible model name."""
    base_url: str | None = None
    api_key: SecretStr | None = None
    model_timeout: float = Field(default=60.0, gt=0)
    """Seconds per model request."""
    model_max_tokens: int = Field(default=2048, ge=64)
    model_max_retries: int = Field(default=2, ge=0, le=10)
    azure_endpoint: str | None = None
    """Azure OpenAI endpoint; with it, ``model`` names the deployment."""
    azure_api_version: str = "2024-10-21"
    price_prompt_per_1k: float = Field(default=0.0, ge=0)
    """Cost per 1,000 prompt tokens, for the report footer."""
    price_completion_per_1k: float = Field(default=0.0, ge=0)
    max_tool_calls: int = Field(default=12, ge=0, le=100)
    """Tool calls one model-driven investigator may make."""
    max_model_tokens: int = Field(default=60_000, ge=1000)
    """Tokens (prompt + completion) one model-driven investigator may spend."""
    tool_output_chars: int = Field(default=8000, ge=500)
    """Cap on one tool result, in characters."""
    redis_url: str | None = None
    """Checkpoint to Redis (needs the JSON and Search modules); in-memory when unset."""
    signoz_url: str | None = None
    signoz_api_key: SecretStr | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    kubernetes_enabled: bool = False
    """Use the kubeconfig/in-cluster credentials for live Kubernetes queries."""
    mongodb_url: SecretStr | None = None
    """Read-only MongoDB URL for live diagnostics."""
    max_rounds: int = Field(default=2, ge=1, le=5)
    """Investigation rounds (the first plus targeted follow-ups)."""
    recursion_limit: int = Field(default=40, ge=10)
    source_timeout: float = Field(default=15.0, gt=0)

    # ------------------------------------------------------------ the HTTP service (``sre-graph serve``)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Static API keys (role ``operator``), sent as ``X-API-Key`` or ``Authorization: Bearer``; comma-separated
    or a JSON array in the environment."""
    jwt_secret: SecretStr | None = None
    """HS256 key for API bearer tokens (JWTs with ``exp`` and a ``role`` claim: admin, operator or viewer)."""
    jwt_public_key: str | None = None
    """RS256 public key (PEM text, or the path of a PEM file) for API bearer tokens."""
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["HS256", "RS256"])
    """JWT algorithms accepted (each also needs its key: ``jwt_secret`` for HS*, ``jwt_public_key`` otherwise)."""
    jwt_audience: str | None = None
    """Required ``aud`` of API bearer tokens, when set (tokens carrying an ``aud`` are refused without it)."""
    webhook_secret: SecretStr | None = None
    """Shared secret of the Alertmanager and SigNoz webhooks (``Authorization: Bearer`` or ``X-Webhook-Secret``)."""
    slack_signing_secret: SecretStr | None = None
    """Verifies Slack's request signatures on the Slack routes."""
    slack_bot_token: SecretStr | None = None
    """Posts reports to Slack (``chat.postMessage``); no delivery without it."""
    slack_channel: str | None = None
    """Channel for reports of alerts that did not come from Slack."""
    slack_base_url: str | None = None
    """Slack Web API base URL (tests point it at a loopback server)."""
    max_concurrent_investigations: int = Field(default=4, ge=1, le=256)
    """Investigations the service runs at once; the rest wait in a queue."""
    dedup_window_minutes: float = Field(default=30.0, ge=0)
    """An alert with the same alert name and service as an open incident created this recently joins it."""
    public_url: str | None = None
    """The service's external base URL, for links to reports in Slack."""
    replay_dir: str | None = None
    """Demo only: replay this recorded incident folder for every alert the service receives, instead of
    querying live sources. Never set it in production."""

    @field_validator("api_keys", "jwt_algorithms", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept a JSON array or a comma-separated string from the environment."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit non-``None`` keywords taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
