"""A loopback HTTP server that speaks OpenAI's chat-completions API, answering from a script.

It follows the public API reference (and what api.openai.com answers), not the client under test:

- ``POST /v1/chat/completions``: the body is validated like the API does: unknown parameters are refused
  ("Unrecognized request argument supplied"), ``model`` must be a known model, ``messages`` a non-empty
  list of ``system|developer|user|assistant|tool`` messages, an assistant message's ``tool_calls`` must each
  be answered by a following ``tool`` message with its ``tool_call_id`` (and a ``tool`` message must answer
  one), ``tools`` are ``{"type": "function", "function": {"name", "description"?, "parameters"?,
  "strict"?}}`` with names matching ``^[a-zA-Z0-9_-]{1,64}$``, ``tool_choice`` is ``none|auto|required`` or
  ``{"type": "function", "function": {"name"}}`` naming an offered tool and needs ``tools``, as does
  ``parallel_tool_calls``; ``max_tokens`` and ``max_completion_tokens`` are positive integers and not both
  set. Streaming is not served. Errors are ``{"error": {"message", "type", "param", "code"}}``.
- ``GET /v1/models`` and ``GET /v1/models/{id}``.
- ``Authorization: Bearer <key>`` is required (401 ``invalid_api_key`` otherwise).
- Azure OpenAI's route too: ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` with an
  ``api-key`` header; the deployment (one of ``models``) names the model, so ``model`` in the body is optional.

A chat-completion answer has the real shape: ``id``, ``object: "chat.completion"``, ``created``, ``model``,
``choices[{index, message{role, content, tool_calls[{id, type: "function", function{name, arguments}}],
refusal}, logprobs, finish_reason}]``, ``usage{prompt_tokens, completion_tokens, total_tokens}``,
``system_fingerprint``.

What it answers is up to ``script(body) -> Reply | dict``: a dict is a full completion (build one with
:func:`completion`); :func:`error` answers an API error (status, OpenAI error body, ``Retry-After``),
:func:`stall` sleeps before answering (to trigger client timeouts), :func:`malformed` sends a raw body.
Every request is recorded (``server.requests``) with the reply it got.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

# --------------------------------------------------------------------- replies


@dataclass
class Reply:
    """One HTTP answer: a JSON body (or raw bytes), a status, extra headers, and a delay before it is sent."""

    status: int = 200
    body: dict[str, Any] | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def tool_call(name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    """A ``tool_calls`` item; ``arguments`` is JSON-encoded unless given as a (possibly broken) string."""
    return {"id": call_id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}


def completion(
    model: str = "test-model",
    *,
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: tuple[int, int] = (10, 5),
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object with one choice."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    prompt, completion_tokens = usage
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:29]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                  "total_tokens": prompt + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default",
        "system_fingerprint": "fp_loopback",
    }


ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "requests", 500: "server_error", 502: "server_error", 503: "server_error"}


def error(status: int, message: str, *, type: str | None = None, code: str | None = None,  # noqa: A002
          param: str | None = None, retry_after: float | None = None) -> Reply:
    """An API error in OpenAI's shape, with ``Retry-After`` when given."""
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    return Reply(status=status, headers=headers, body={"error": {
        "message": message, "type": type or ERROR_TYPES.get(status, "api_error"), "param": param, "code": code}})


def stall(seconds: float, then: Reply | dict[str, Any] | None = None) -> Reply:
    """Wait ``seconds`` before answering (``then``, or an empty completion)."""
    reply = as_reply(then if then is not None else completion(content=""))
    reply.delay = seconds
    return reply


def malformed(text: str = '{"id": "chatcmpl-x", "object": "chat.completion", "choices": [', *,
              content_type: str = "application/json") -> Reply:
    """A 200 whose body is not a valid completion (truncated JSON by default)."""
    return Reply(body=text.encode(), headers={"content-type": content_type})


def as_reply(value: Reply | dict[str, Any]) -> Reply:
    """A script's answer as a :class:`Reply`."""
    return value if isinstance(value, Reply) else Reply(body=value)


# --------------------------------------------------------------------- request validation


class InvalidRequest(Exception):
    """A request the API refuses with 400."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


KNOWN_PARAMS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
AZURE_CHAT = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


def _positive_int(body: dict[str, Any], key: str) -> None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidRequest(f"Invalid '{key}': integer below minimum value. Expected a value >= 1, but got "
                             f"{value!r} instead.", key, "integer_below_min_value")


def _text_content(content: Any, where: str, *, allow_none: bool = False) -> None:
    if content is None and allow_none:
        return
    if isinstance(content, str):
        return
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") in ("text", "image_url", "refusal")
                                         for p in content):
        return
    raise InvalidRequest(f"Invalid type for '{where}': expected a string or an array of content parts.", where,
                         "invalid_type")


def validate_chat_request(body: Any, models: set[str], *, deployment: str | None = None) -> None:
    """Raise :class:`InvalidRequest` (or ``LookupError`` for an unknown model) like the API does.

    With an Azure ``deployment`` the body's ``model`` may be absent or null.
    """
    if not isinstance(body, dict):
        raise InvalidRequest("We could not parse the JSON body of your request.")
    unknown = sorted(set(body) - KNOWN_PARAMS)
    if unknown:
        raise InvalidRequest(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    model = body.get("model") if deployment is None else deployment
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", "model")
    if model not in models:
        raise LookupError(model)
    if body.get("stream"):
        raise InvalidRequest("this loopback server does not stream", "stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("[] is too short - 'messages'", "messages", "empty_array")
    pending: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise InvalidRequest(f"Invalid value for '{where}.role'.", f"{where}.role", "invalid_value")
        role = message["role"]
        if pending and role != "tool":
            raise InvalidRequest("An assistant message with 'tool_calls' must be followed by tool messages "
                                 "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                                 f"response messages: {', '.join(sorted(pending))}", f"{where}.role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in pending:
                raise InvalidRequest("Invalid parameter: messages with role 'tool' must be a response to a "
                                     "preceeding message with 'tool_calls'.", f"{where}.role")
            pending.pop(call_id)
            _text_content(message.get("content"), f"{where}.content")
        elif role == "assistant":
            calls = message.get("tool_calls")
            _text_content(message.get("content"), f"{where}.content", allow_none=bool(calls))
            for j, call in enumerate(calls or []):
                fn = call.get("function") if isinstance(call, dict) else None
                if (not isinstance(call, dict) or call.get("type") != "function" or not isinstance(call.get("id"), str)
                        or not isinstance(fn, dict) or not isinstance(fn.get("name"), str)
                        or not isinstance(fn.get("arguments"), str)):
                    raise InvalidRequest(f"Invalid '{where}.tool_calls[{j}]'.", f"{where}.tool_calls[{j}]")
                pending[call["id"]] = fn["name"]
        else:
            _text_content(message.get("content"), f"{where}.content")
    if pending:
        raise InvalidRequest("An assistant message with 'tool_calls' must be followed by tool messages responding "
                             f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                             f"{', '.join(sorted(pending))}", "messages")
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise InvalidRequest("[] is too short - 'tools'", "tools", "empty_array")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
                raise InvalidRequest(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}].function",
                                     "missing_required_parameter")
            name = fn.get("name")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise InvalidRequest(f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected "
                                     "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                                     f"tools[{i}].function.name", "invalid_value")
            if name in names:
                raise InvalidRequest(f"Duplicate tool name: {name}", f"tools[{i}].function.name")
            names.add(name)
            params = fn.get("parameters")
            if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
                raise InvalidRequest(f"Invalid schema for function '{name}': schema must be a JSON Schema of "
                                     "'type: \"object\"'.", f"tools[{i}].function.parameters",
                                     "invalid_function_parameters")
            extra = sorted(set(fn) - {"name", "description", "parameters", "strict"})
            if extra:
                raise InvalidRequest(f"Unrecognized request argument supplied: tools[{i}].function.{extra[0]}")
    choice = body.get("tool_choice")
    if choice is not None:
        if not tools:
            raise InvalidRequest("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                                 "specified.", "tool_choice")
        if isinstance(choice, str):
            if choice not in ("none", "auto", "required"):
                raise InvalidRequest(f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and "
                                     "'required'.", "tool_choice", "invalid_value")
        elif not (isinstance(choice, dict) and choice.get("type") == "function"
                  and isinstance(choice.get("function"), dict) and choice["function"].get("name") in names):
            raise InvalidRequest("Invalid 'tool_choice': it must name one of the functions in 'tools'.",
                                 "tool_choice")
    if body.get("parallel_tool_calls") is not None:
        if not tools:
            raise InvalidRequest("Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
                                 "when 'tools' are specified.", "parallel_tool_calls")
        if not isinstance(body["parallel_tool_calls"], bool):
            raise InvalidRequest("Invalid type for 'parallel_tool_calls': expected a boolean.",
                                 "parallel_tool_calls", "invalid_type")
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        raise InvalidRequest("max_tokens and max_completion_tokens cannot both be set", "max_tokens")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, int | float) and 0 <= temperature <= 2):
        raise InvalidRequest(f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
                             f"{temperature} instead.", "temperature", "decimal_above_max_value")


# --------------------------------------------------------------------- the server


@dataclass
class Recorded:
    """One request the server saw, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, list[str]] = field(default_factory=dict)
    status: int | None = None
    """The status sent; ``None`` while unanswered, and for good when the client hung up first."""
    reply: Any = None
    abandoned: bool = False
    """The client closed the connection before the (stalled) answer was sent: it timed out."""
    at: float = field(default_factory=time.monotonic)


Script = Callable[[dict[str, Any]], Reply | dict[str, Any]]


class OpenAIServer:
    """The server; start it with :func:`serve`."""

    def __init__(self, script: Script | None = None, *, models: tuple[str, ...] = ("test-model",),
                 api_key: str = "test") -> None:
        self.script: Script = script or (lambda body: completion(body["model"], content="ok"))
        self.models = set(models)
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.script_errors: list[str] = []
        """Exceptions the script raised (answered as 500s): a test should assert there are none."""
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def chat_requests(self) -> list[Recorded]:
        """The chat-completion requests (OpenAI's route or Azure's), in arrival order."""
        with self.lock:
            return [r for r in self.requests if r.path == "/v1/chat/completions" or AZURE_CHAT.match(r.path)]

    def _answer(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[Recorded, Reply]:
        path, _, query = target.partition("?")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(method, path, headers, body, parse_qs(query))
        with self.lock:
            self.requests.append(record)
        azure = AZURE_CHAT.match(path)
        if azure:
            reply = self._azure(method, azure.group(1), record)
        elif headers.get("authorization", "") != f"Bearer {self.api_key}":
            reply = error(401, "Incorrect API key provided.", code="invalid_api_key")
        elif method == "GET" and path == "/v1/models":
            reply = Reply(body={"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in sorted(self.models)]})
        elif method == "GET" and path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            reply = (Reply(body={"id": name, "object": "model", "created": 0, "owned_by": "loopback"})
                     if name in self.models else error(404, f"The model '{name}' does not exist",
                                                       code="model_not_found", param="model"))
        elif method == "POST" and path == "/v1/chat/completions":
            try:
                validate_chat_request(body, self.models)
            except InvalidRequest as exc:
                reply = error(400, exc.message, param=exc.param, code=exc.code)
            except LookupError as exc:
                reply = error(404, f"The model `{exc.args[0]}` does not exist or you do not have access to it.",
                              code="model_not_found")
            else:
                reply = self._scripted(body)
        else:
            reply = error(404, f"Invalid URL ({method} {path})", code="unknown_url")
        record.reply = reply.body
        return record, reply

    def _azure(self, method: str, deployment: str, record: Recorded) -> Reply:
        """Azure OpenAI's chat-completions route (errors in Azure's shape where it differs)."""
        if method != "POST":
            return error(405, "Method not allowed", code="405")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", (record.query.get("api-version") or [""])[0]):
            return error(404, "Resource not found", code="404")
        if record.headers.get("api-key") != self.api_key:
            return error(401, "Access denied due to invalid subscription key or wrong API endpoint.", code="401")
        try:
            validate_chat_request(record.body, self.models, deployment=deployment)
        except InvalidRequest as exc:
            return error(400, exc.message, param=exc.param, code=exc.code)
        except LookupError:
            return error(404, "The API deployment for this resource does not exist.", code="DeploymentNotFound")
        return self._scripted({**record.body, "model": deployment})

    def _scripted(self, body: dict[str, Any]) -> Reply:
        try:
            return as_reply(self.script(body))
        except Exception as exc:  # noqa: BLE001 - a broken script must show up in the test, not hang it
            with self.lock:
                self.script_errors.append(f"{type(exc).__name__}: {exc}")
            return error(500, f"script error: {type(exc).__name__}: {exc}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                record, reply = server._answer(method, self.path, headers, raw)
                if reply.delay and not self._wait(reply.delay):
                    record.abandoned = not server.closing.is_set()
                    self.close_connection = True
                    return
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    out = {"content-type": "application/json", "x-request-id": f"req_{uuid.uuid4().hex[:16]}",
                           "openai-processing-ms": "1", **reply.headers}
                    for key, value in out.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    record.abandoned = True
                    self.close_connection = True
                    return
                record.status = reply.status

            def _wait(self, seconds: float) -> bool:
                """Sleep ``seconds``; ``False`` as soon as the client hangs up or the server closes."""
                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    if server.closing.wait(min(left, 0.02)):
                        return False
                    readable, _, _ = select.select([self.connection], [], [], 0)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        return False  # EOF: the client timed out and closed the connection
                return True

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        return Handler

    def close(self) -> None:
        """Stop serving; stalled answers are abandoned."""
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serve(script: Script | None = None, **kwargs: Any) -> Iterator[OpenAIServer]:
    """Run an :class:`OpenAIServer` on a free loopback port for the ``with`` block."""
    server = OpenAIServer(script, **kwargs)
    server.thread.start()
    try:
        yield server
    finally:
        server.close()
        server.thread.join(timeout=5)
