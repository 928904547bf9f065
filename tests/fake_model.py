"""A scripted chat model: a real langchain-core chat model whose replies come from a script function.

It has a working ``bind_tools`` (returns a bound copy that remembers the tools), so the real tool-calling
loop and ``with_structured_output(method="function_calling")`` run unchanged. Parallel investigators call it
from several threads: the script decides on the conversation's content, not on call order.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

Script = Callable[[list[BaseMessage], list[str]], AIMessage]


def stage(messages: list[BaseMessage]) -> str:
    """Which node a conversation belongs to, from its first message."""
    text = str(messages[0].content)
    for marker, name in (("You classify", "classify"), ("investigating one domain", "investigate"),
                         ("check a draft root-cause analysis", "verify"), ("write the root-cause analysis", "report")):
        if marker in text:
            return name
    return "other"


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """A tool call."""
    return {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}


class ScriptedChatModel(BaseChatModel):
    """Replies from ``script(messages, bound_tool_names)``; counts calls per stage."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    script: Any
    bound: list[str] = Field(default_factory=list)
    counts: Any = Field(default_factory=Counter)
    lock: Any = Field(default_factory=threading.Lock)
    usage: tuple[int, int] = (120, 30)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        names = [getattr(t, "name", None) or getattr(t, "__name__", None) or t.get("name") if isinstance(t, dict)
                 else getattr(t, "name", None) or getattr(t, "__name__", "") for t in tools]
        return self.model_copy(update={"bound": [n for n in names if n]})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        with self.lock:
            self.counts[stage(messages)] += 1
            self.counts["total"] += 1
        reply = self.script(messages, self.bound)
        reply.usage_metadata = {"input_tokens": self.usage[0], "output_tokens": self.usage[1],
                                "total_tokens": sum(self.usage)}
        return ChatResult(generations=[ChatGeneration(message=reply)])
