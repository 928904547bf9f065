"""Slack: verify request signatures, render a report as Block Kit, post it with retries and backoff."""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier

from sre_graph.models import Report
from sre_graph.timeutil import iso

TEXT_LIMIT = 3000
"""Block Kit's limit for a section's text."""
HEADER_LIMIT = 150
"""Block Kit's limit for a header's plain text."""
MAX_BLOCKS = 50
"""Block Kit's limit for blocks in one message."""
URL_LIMIT = 3000
"""Block Kit's limit for a button URL."""
TOP_EVIDENCE = 3
MAX_STEPS = 10
ELLIPSIS = "…"


# --------------------------------------------------------------------- request signing


class SlackSignatureError(Exception):
    """A request is not provably from Slack: ``reason`` says why (safe to return to the caller)."""

    def __init__(self, reason: str) -> None:
        """Keep the reason: ``missing signature``, ``bad timestamp``, ``stale timestamp``, ``bad signature``..."""
        super().__init__(reason)
        self.reason = reason


def verify_slack_signature(
    signing_secret: str,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    now: float | None = None,
    tolerance: int = 300,
) -> None:
    """Check Slack's v0 request signature (HMAC-SHA256 of ``v0:{timestamp}:{body}``); return only if it holds.

    slack-sdk's :class:`~slack_sdk.signature.SignatureVerifier` computes the signature; its own
    ``is_valid`` answers only yes or no with a fixed window, so the window is checked here to name the
    reason. Signatures are compared in constant time.

    Args:
        signing_secret: The app's signing secret.
        timestamp: The ``X-Slack-Request-Timestamp`` header (epoch seconds).
        body: The raw request body, exactly as received.
        signature: The ``X-Slack-Signature`` header (``v0=<hex>``).
        now: The current epoch time (for tests); the clock by default.
        tolerance: How far, in seconds, the timestamp may be from now, either way (replay protection).

    Raises:
        SlackSignatureError: ``no signing secret configured``, ``missing signature``, ``missing timestamp``,
            ``bad timestamp``, ``stale timestamp`` or ``bad signature``.
    """
    if not signing_secret or not signing_secret.strip():
        raise SlackSignatureError("no signing secret configured")
    if not signature:
        raise SlackSignatureError("missing signature")
    if not timestamp:
        raise SlackSignatureError("missing timestamp")
    try:
        sent_at = int(timestamp.strip())
    except ValueError:
        raise SlackSignatureError("bad timestamp") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise SlackSignatureError("stale timestamp")
    try:
        expected = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    except UnicodeDecodeError:  # Slack always sends UTF-8
        raise SlackSignatureError("bad signature") from None
    if expected is None or not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SlackSignatureError("bad signature")


# --------------------------------------------------------------------- Block Kit


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_PARTIAL_ENTITY = re.compile(r"&(?:a|am|amp|l|lt|g|gt)?$")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, never through an escape like ``&amp;``."""
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - len(ELLIPSIS)])
    return cut.rstrip() + ELLIPSIS


def _code(text: str, limit: int) -> str:
    """A fenced code block holding ``text`` (escaped, capped), whose fence always closes."""
    body = clip(escape(text).replace("```", "'''"), limit - 6)
    return f"```{body}```"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, TEXT_LIMIT)}}


def fallback_text(report: Report) -> str:
    """The message's plain ``text``: what notifications and clients without Block Kit show."""
    text = (f"{report.priority} · {report.title}: root cause {report.root_cause_title} ({report.root_cause}), "
            f"confidence {report.confidence:.0%}")
    return clip(escape(text), TEXT_LIMIT)


def report_blocks(report: Report, link: str | None = None) -> list[dict[str, Any]]:
    """The report as Block Kit blocks, within Slack's limits (3,000 characters a text, 50 blocks).

    Header (priority and title), root cause (title, taxonomy id, statement) with confidence and impact,
    the top three pieces of evidence (source, summary, the query as code), the remediation steps, a
    context line (service, namespace, model, incident), and a button to the full report when ``link``
    is given.

    Args:
        report: The finished report.
        link: URL of the full report (an HTTP(S) URL; omitted when ``None`` or too long for a button).
    """
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": clip(f"{report.priority} · {report.title}", HEADER_LIMIT)}},
    ]
    cause = (f"*Root cause:* {escape(report.root_cause_title)} (`{escape(report.root_cause)}`)\n"
             f"*Confidence:* {report.confidence:.0%}")
    if report.domain:
        cause += f" · *Domain:* {escape(report.domain)}"
    for label, text in (("", report.root_cause_statement), ("*Impact:* ", report.impact)):
        if text:
            cause += f"\n{label}{escape(text)}"
    blocks.append(_section(cause))

    evidence = report.evidence[:TOP_EVIDENCE]
    if evidence:
        blocks.append({"type": "divider"})
        title = f"*Evidence* (top {len(evidence)} of {len(report.evidence)})"
        blocks.append(_section(title))
        for ev in evidence:
            when = f" · {iso(ev.timestamp)}" if ev.timestamp else ""
            head = f"*{escape(ev.source)}* `{escape(ev.id)}`{when}\n{clip(escape(ev.summary), 1200)}\n"
            blocks.append(_section(head + _code(ev.query, TEXT_LIMIT - len(head))))
    else:
        blocks.append(_section("_No evidence supports a conclusion._"))

    if report.remediation:
        text, budget = "*Remediation*", TEXT_LIMIT - 60  # room for the "…and N more" line
        shown = 0
        for i, step in enumerate(report.remediation[:MAX_STEPS], 1):
            line = f"\n{i}. {clip(escape(step), 600)}"
            if len(text) + len(line) > budget:
                break
            text, shown = text + line, i
        if len(report.remediation) > shown:
            text += f"\n_…and {len(report.remediation) - shown} more in the full report_"
        blocks.append({"type": "divider"})
        blocks.append(_section(text))

    context = [f"service `{escape(report.service)}`"]
    if report.namespace:
        context.append(f"namespace `{escape(report.namespace)}`")
    context += [f"model `{escape(report.model)}`", f"incident `{escape(report.incident_id)}`",
                f"alert at {iso(report.alert_time)}"]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(" · ".join(context), 2000)}]})

    if link and len(link) <= URL_LIMIT:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": "open_full_report", "url": link,
             "text": {"type": "plain_text", "text": "Full report"}},
        ]})
    return blocks[:MAX_BLOCKS]


# --------------------------------------------------------------------- delivery


class SlackDeliveryError(Exception):
    """Slack refused a message, or could not be reached, after the retries."""

    def __init__(self, error: str, *, status: int | None = None, method: str = "chat.postMessage") -> None:
        """Keep Slack's error code (``channel_not_found``, ``ratelimited``, ``http_500``, ``connection_error``...)."""
        super().__init__(f"Slack {method} failed: {error}" + (f" (HTTP {status})" if status else ""))
        self.error = error
        self.status = status


_ERROR_CODE = re.compile(r"^[a-z0-9_]+$")


class SlackNotifier:
    """Posts reports and replies with slack-sdk's ``WebClient``; rate limits, 5xx and connection errors retry."""

    def __init__(
        self, token: str, *, base_url: str | None = None, retries: int = 3, timeout: int = 10, backoff: float = 0.5
    ) -> None:
        """Build the client.

        Args:
            token: The bot token (``xoxb-…``).
            base_url: The Web API base (tests point it at a loopback server); Slack's by default.
            retries: Retries per call across all causes: a 429 waits for ``Retry-After``, a 500/503 or a
                connection error backs off exponentially.
            timeout: Seconds per HTTP request.
            backoff: Backoff factor: waits of ``backoff * 2**attempt`` seconds plus jitter.
        """
        base = base_url or WebClient.BASE_URL
        interval = BackoffRetryIntervalCalculator(backoff_factor=backoff)
        self.client = WebClient(
            token=token,
            base_url=base if base.endswith("/") else base + "/",
            timeout=timeout,
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=retries),
                ServerErrorRetryHandler(max_retry_count=retries, interval_calculator=interval),
                ConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=interval),
            ],
        )

    def post_report(
        self, channel: str, report: Report, *, thread_ts: str | None = None, link: str | None = None
    ) -> str:
        """Post the report as Block Kit; returns the message ``ts`` (the thread to reply in).

        Raises:
            SlackDeliveryError: Slack's error code after the retries.
        """
        return self._post(channel=channel, text=fallback_text(report), blocks=report_blocks(report, link),
                          thread_ts=thread_ts)

    def post_text(self, channel: str, text: str, thread_ts: str | None = None) -> str:
        """Post plain mrkdwn text (escaped, capped); returns the message ``ts``.

        Raises:
            SlackDeliveryError: Slack's error code after the retries.
        """
        return self._post(channel=channel, text=clip(escape(text), TEXT_LIMIT), thread_ts=thread_ts)

    def _post(self, **message: Any) -> str:
        try:
            response = self.client.chat_postMessage(unfurl_links=False, unfurl_media=False, **message)
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            code = str(data.get("error") or "")
            status = exc.response.status_code
            raise SlackDeliveryError(code if _ERROR_CODE.match(code) else f"http_{status}", status=status) from exc
        except (SlackRequestError, OSError) as exc:  # URLError, timeouts, refused connections
            raise SlackDeliveryError(f"connection_error: {exc}") from exc
        ts = response.get("ts")
        if not ts:
            raise SlackDeliveryError("no_ts", status=response.status_code)
        return str(ts)
