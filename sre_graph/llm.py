"""The model side: building an OpenAI-compatible chat model, structured calls with fallback, token accounting."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.types import RetryPolicy
from pydantic import BaseModel, SecretStr, ValidationError

from sre_graph.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


class ModelUnavailable(Exception):
    """The model failed (timeout, 5xx, 429, malformed output): the node falls back to the deterministic result."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        """A timeout, 429 or 5xx: worth retrying the node (``MODEL_RETRY``) before falling back."""


class TransientModelError(Exception):
    """Raised by a node to have LangGraph's RetryPolicy run it again."""


def _client_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(all model client errors, the transient ones), from the openai package when it is installed."""
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai depends on it
        return (TimeoutError, ConnectionError), (TimeoutError, ConnectionError)
    transient = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError,
                 openai.InternalServerError, TimeoutError, ConnectionError)
    return (openai.APIError, TimeoutError, ConnectionError), transient


MODEL_ERRORS, TRANSIENT_ERRORS = _client_errors()

MODEL_RETRY = RetryPolicy(max_attempts=2, initial_interval=1.0, retry_on=TransientModelError)
"""Model nodes run once more after a timeout, 429 or 5xx, then fall back to the deterministic result."""


def as_unavailable(exc: BaseException) -> ModelUnavailable:
    """A client error as ``ModelUnavailable``, marked transient for timeouts, 429s and 5xx."""
    return ModelUnavailable(f"{type(exc).__name__}: {str(exc)[:200]}", transient=isinstance(exc, TRANSIENT_ERRORS))


def fallback_or_retry(exc: ModelUnavailable, runtime: Any, max_attempts: int) -> str:
    """Retry the node on a transient failure while attempts remain; otherwise return the note to record."""
    info = getattr(runtime, "execution_info", None)
    attempt = getattr(info, "node_attempt", 1) if info else 1
    if exc.transient and attempt < max_attempts:
        raise TransientModelError(exc.reason) from exc
    return exc.reason


def build_chat_model(settings: Settings) -> BaseChatModel | None:
    """An OpenAI-compatible chat model from settings; ``None`` in ``rules`` mode."""
    if not settings.model or settings.model == "rules":
        return None
    key = settings.api_key or None  # an empty key counts as none
    common: dict[str, Any] = {"timeout": settings.model_timeout, "max_retries": settings.model_max_retries,
                              "max_tokens": settings.model_max_tokens, "temperature": 0}
    if settings.azure_endpoint:
        from langchain_openai import AzureChatOpenAI

        return AzureChatOpenAI(azure_deployment=settings.model, azure_endpoint=settings.azure_endpoint,
                               api_version=settings.azure_api_version, api_key=key, **common)
    from langchain_openai import ChatOpenAI

    # A local server (vLLM, Ollama, llama.cpp) needs no key, but the client insists on one.
    return ChatOpenAI(model=settings.model, base_url=settings.base_url, api_key=key or SecretStr("not-needed"),
                      **common)


def resolve_model(context: Any) -> BaseChatModel | None:
    """The run's chat model: one injected through the context, or built from settings; ``None`` for rules."""
    model = getattr(context, "chat_model", None)
    if model is not None:
        return model
    name = getattr(context, "model", "rules")
    if not name or name == "rules":
        return None
    settings = getattr(context, "settings", None)
    if settings is None:
        from sre_graph.settings import load_settings

        settings = load_settings(model=name)
    elif settings.model != name:
        settings = settings.model_copy(update={"model": name})
    model = build_chat_model(settings)
    context.chat_model = model
    return model


def usage_of(messages: list[BaseMessage] | BaseMessage | None) -> dict[str, int]:
    """Prompt and completion tokens from the API's usage fields (never estimated locally)."""
    if messages is None:
        return {}
    items = messages if isinstance(messages, list) else [messages]
    prompt = completion = 0
    for message in items:
        meta = getattr(message, "usage_metadata", None) or {}
        prompt += int(meta.get("input_tokens") or 0)
        completion += int(meta.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion} if prompt or completion else {}


def add_usage(total: dict[str, dict[str, int]] | None, node: str, usage: dict[str, int]) -> dict[str, dict[str, int]]:
    """Add one node's usage into a per-node tally."""
    out = {k: dict(v) for k, v in (total or {}).items()}
    slot = out.setdefault(node, {"prompt_tokens": 0, "completion_tokens": 0})
    for key in ("prompt_tokens", "completion_tokens"):
        slot[key] += int(usage.get(key) or 0)
    return out


def structured(model: BaseChatModel, schema: type[T], messages: list[BaseMessage] | str) -> tuple[T, dict[str, int]]:
    """Call the model for a ``schema`` instance (function calling); raise ``ModelUnavailable`` on any failure."""
    runnable = model.with_structured_output(schema, method="function_calling", include_raw=True)
    try:
        reply = runnable.invoke(messages)
    except MODEL_ERRORS as exc:
        raise as_unavailable(exc) from exc
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"malformed model output: {str(exc)[:200]}") from exc
    raw = reply.get("raw") if isinstance(reply, dict) else None
    usage = usage_of(raw) if isinstance(raw, AIMessage) else {}
    parsed = reply.get("parsed") if isinstance(reply, dict) else reply
    if isinstance(reply, dict) and reply.get("parsing_error") is not None:
        raise ModelUnavailable(f"malformed model output: {reply['parsing_error']}")
    if not isinstance(parsed, schema):
        try:
            parsed = schema.model_validate(parsed)
        except ValidationError as exc:
            raise ModelUnavailable(f"malformed model output: {exc.errors()[0].get('msg')}") from exc
    return parsed, usage


def cost(usage: dict[str, dict[str, int]] | None, settings: Settings) -> float:
    """Cost of a run's tokens at the configured prices."""
    total = 0.0
    for slot in (usage or {}).values():
        total += slot.get("prompt_tokens", 0) / 1000 * settings.price_prompt_per_1k
        total += slot.get("completion_tokens", 0) / 1000 * settings.price_completion_per_1k
    return round(total, 6)
