"""One settings object reads the environment (``SRE_GRAPH_`` prefix); explicit arguments win."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. Build with ``Settings(**explicit)``: keywords beat the environment."""

    model_config = SettingsConfigDict(env_prefix="SRE_GRAPH_", extra="ignore")

    model: str = "rules"
    """``rules`` (the deterministic engine) or an OpenAI-compatible model name."""
    base_url: str | None = None
    api_key: SecretStr | None = None
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


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit non-``None`` keywords taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
