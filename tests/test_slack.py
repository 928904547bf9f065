"""Slack: request signatures, the report as Block Kit, and delivery through slack-sdk to a loopback Slack."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sre_graph.models import Evidence, Report
from sre_graph.server.slack import (
    HEADER_LIMIT,
    MAX_BLOCKS,
    TEXT_LIMIT,
    SlackDeliveryError,
    SlackNotifier,
    SlackSignatureError,
    fallback_text,
    report_blocks,
    verify_slack_signature,
)

REPO = Path(__file__).resolve().parent.parent
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000.0
BODY = b'{"type":"event_callback","event_id":"Ev01","event":{"type":"app_mention","text":"<@U1> investigate"}}'


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """Slack's v0 signature, computed here independently of the code under test."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


# --------------------------------------------------------------------- signatures


def test_a_good_signature_passes():
    timestamp = str(int(NOW))
    verify_slack_signature(SECRET, timestamp, BODY, sign(BODY, timestamp), now=NOW)
    verify_slack_signature(SECRET, str(int(NOW) - 299), BODY, sign(BODY, str(int(NOW) - 299)), now=NOW)
    live = str(int(time.time()))
    verify_slack_signature(SECRET, live, BODY, sign(BODY, live))  # the real clock


@pytest.mark.parametrize(("timestamp", "body", "signature", "reason"), [
    (str(int(NOW)), BODY, None, "missing signature"),
    (str(int(NOW)), BODY, "", "missing signature"),
    (None, BODY, "v0=00", "missing timestamp"),
    ("yesterday", BODY, "v0=00", "bad timestamp"),
    ("1.7e9", BODY, "v0=00", "bad timestamp"),
    (str(int(NOW) - 301), BODY, sign(BODY, str(int(NOW) - 301)), "stale timestamp"),
    (str(int(NOW) - 3600), BODY, sign(BODY, str(int(NOW) - 3600)), "stale timestamp"),
    (str(int(NOW) + 301), BODY, sign(BODY, str(int(NOW) + 301)), "stale timestamp"),
    (str(int(NOW)), BODY + b" ", sign(BODY, str(int(NOW))), "bad signature"),
    (str(int(NOW)), BODY.replace(b"investigate", b"delete-all"), sign(BODY, str(int(NOW))), "bad signature"),
    (str(int(NOW)), BODY, sign(BODY, str(int(NOW)), secret="another-secret"), "bad signature"),
    (str(int(NOW)), BODY, sign(BODY, str(int(NOW) - 1)), "bad signature"),
    (str(int(NOW)), BODY, sign(BODY, str(int(NOW)))[3:], "bad signature"),
    (str(int(NOW)), BODY, sign(BODY, str(int(NOW))).upper(), "bad signature"),
    (str(int(NOW)), b"\xff\xfe", sign(b"\xff\xfe", str(int(NOW))), "bad signature"),
    (str(int(NOW)), BODY, "v0=\u00e9" * 20, "bad signature"),
], ids=["no-signature", "empty-signature", "no-timestamp", "word-timestamp", "float-timestamp", "stale",
        "an-hour-old", "future", "extra-byte", "tampered-body", "wrong-secret", "signed-other-timestamp",
        "no-v0-prefix", "case-changed", "not-utf8", "non-ascii-signature"])
def test_a_bad_request_is_refused_with_its_reason(timestamp, body, signature, reason):
    with pytest.raises(SlackSignatureError) as info:
        verify_slack_signature(SECRET, timestamp, body, signature, now=NOW)
    assert info.value.reason == reason and str(info.value) == reason


def test_no_secret_refuses_everything_and_tolerance_is_configurable():
    timestamp = str(int(NOW))
    with pytest.raises(SlackSignatureError, match="no signing secret configured"):
        verify_slack_signature("", timestamp, BODY, sign(BODY, timestamp, secret=""), now=NOW)
    old = str(int(NOW) - 100)
    with pytest.raises(SlackSignatureError, match="stale timestamp"):
        verify_slack_signature(SECRET, old, BODY, sign(BODY, old), now=NOW, tolerance=60)
    older = str(int(NOW) - 500)
    verify_slack_signature(SECRET, older, BODY, sign(BODY, older), now=NOW, tolerance=600)


# --------------------------------------------------------------------- Block Kit


@pytest.fixture(scope="module")
def report() -> Report:
    """The report of a real run over a recorded incident."""
    from sre_graph.runner import investigate

    result = investigate(incident_dir=REPO / "evals" / "incidents" / "net-orders-inventory-netpol")
    assert result is not None and result.evidence and result.remediation
    return result


def texts(block: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every text object in a block, with its type."""
    if "text" in block:
        yield block["text"]["type"], block["text"]["text"]
    for element in block.get("elements", []):
        if "text" in element:
            text = element["text"]
            yield (text["type"], text["text"]) if isinstance(text, dict) else (element["type"], text)


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert 1 <= len(blocks) <= MAX_BLOCKS
    json.dumps(blocks)
    for block in blocks:
        assert block["type"] in {"header", "section", "divider", "context", "actions"}
        for kind, text in texts(block):
            limit = HEADER_LIMIT if block["type"] == "header" else TEXT_LIMIT
            assert 0 < len(text) <= limit, (block["type"], len(text))
            assert text.count("```") % 2 == 0, f"unbalanced code fence: {text[-40:]!r}"
            if kind == "mrkdwn":
                stripped = text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
                assert "<" not in stripped and ">" not in stripped and "&" not in stripped, text


def test_report_blocks_for_a_real_report(report):
    link = "https://sre.example.com/incidents/inc-123"
    blocks = report_blocks(report, link)
    assert_within_limits(blocks)
    header = blocks[0]
    assert header["type"] == "header" and header["text"]["text"] == f"{report.priority} · {report.title}"
    rendered = json.dumps(blocks)
    cause = blocks[1]["text"]["text"]
    assert f"`{report.root_cause}`" in cause and report.root_cause_title in cause
    assert f"*Confidence:* {report.confidence:.0%}" in cause
    evidence_blocks = [b for b in blocks if b["type"] == "section" and "```" in b["text"]["text"]]
    assert len(evidence_blocks) == min(3, len(report.evidence))
    for block, ev in zip(evidence_blocks, report.evidence, strict=False):
        text = block["text"]["text"]
        assert f"`{ev.id}`" in text and f"*{ev.source}*" in text and "```" in text
        assert ev.summary[:40].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text
    for ev in report.evidence[3:]:
        assert ev.id not in rendered, "only the top three"
    remediation = next(b["text"]["text"] for b in blocks if b["type"] == "section"
                       and b["text"]["text"].startswith("*Remediation*"))
    assert remediation.count("\n") == len(report.remediation) and "1. " in remediation
    context = next(b for b in blocks if b["type"] == "context")["elements"][0]["text"]
    assert f"service `{report.service}`" in context and f"model `{report.model}`" in context
    if report.namespace:
        assert f"namespace `{report.namespace}`" in context
    (button,) = blocks[-1]["elements"]
    assert blocks[-1]["type"] == "actions" and button["type"] == "button" and button["url"] == link
    assert "actions" not in {b["type"] for b in report_blocks(report, None)}


def test_report_blocks_stay_within_limits_when_everything_is_huge(report):
    nasty = "<!channel> & <https://evil|click> ```" * 400
    evidence = [Evidence(id=f"k8s-{i:08x}", source="kubernetes", query=f"kubectl get {nasty}", summary=nasty)
                for i in range(40)]
    huge = report.model_copy(update={
        "title": "T" * 400, "root_cause_statement": nasty, "impact": nasty, "evidence": evidence,
        "remediation": [f"step {i}: {nasty}" for i in range(80)], "service": "s" * 3000,
    })
    blocks = report_blocks(huge, "https://x.example/" + "a" * 4000)
    assert_within_limits(blocks)
    assert blocks[0]["text"]["text"].endswith("…") and len(blocks[0]["text"]["text"]) == HEADER_LIMIT
    assert "actions" not in {b["type"] for b in blocks}, "a URL over 3,000 characters cannot be a button"
    assert "<!channel>" not in json.dumps(blocks), "data from the incident never pings a channel"
    assert "k8s-00000002" in json.dumps(blocks) and "k8s-00000003" not in json.dumps(blocks)
    remediation = next(b["text"]["text"] for b in blocks
                       if b["type"] == "section" and b["text"]["text"].startswith("*Remediation*"))
    shown = re.findall(r"^(\d+)\. step", remediation, re.M)
    more = re.search(r"…and (\d+) more in the full report_$", remediation)
    assert shown and more and len(shown) + int(more.group(1)) == 80, "steps that do not fit are counted, not lost"
    assert len(fallback_text(huge)) <= TEXT_LIMIT


def test_a_report_without_evidence_says_so(report):
    bare = report.model_copy(update={"evidence": [], "remediation": [], "namespace": None, "domain": None,
                                     "root_cause": "unknown", "root_cause_title": "Unknown"})
    blocks = report_blocks(bare)
    assert_within_limits(blocks)
    rendered = json.dumps(blocks)
    assert "_No evidence supports a conclusion._" in rendered and "Remediation" not in rendered
    assert "namespace" not in rendered


def test_fallback_text_names_priority_title_and_root_cause(report):
    text = fallback_text(report)
    assert text.startswith(f"{report.priority} · ") and report.root_cause in text and "%" in text


# --------------------------------------------------------------------- delivery, against a loopback Slack


class FakeSlack:
    """A loopback Web API: records each request slack-sdk makes and answers from a script, then with ``ok``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                          "json": json.loads(raw) if raw.startswith(b"{") else None,
                                          "at": time.monotonic()})
                    ok = {"ok": True, "channel": "C0123", "ts": f"1700000000.{len(fake.requests):06d}"}
                    status, headers, body = fake.script.pop(0) if fake.script else (200, {}, json.dumps(ok).encode())
                self.send_response(status)
                headers = {"Content-Type": "application/json; charset=utf-8", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A fresh loopback Slack per test."""
    fake = FakeSlack()
    try:
        yield fake
    finally:
        fake.stop()


def notifier(slack: FakeSlack, retries: int = 3) -> SlackNotifier:
    return SlackNotifier("xoxb-test-token", base_url=slack.url, retries=retries, timeout=5, backoff=0.01)


def test_post_report_sends_block_kit_to_the_thread(slack, report):
    link = "https://sre.example.com/incidents/inc-1"
    ts = notifier(slack).post_report("C0123", report, thread_ts="1699999999.000100", link=link)
    assert ts == "1700000000.000001"
    (request,) = slack.requests
    assert request["path"] == "/api/chat.postMessage"
    assert request["headers"]["Authorization"] == "Bearer xoxb-test-token"
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = request["json"]
    assert body["channel"] == "C0123" and body["thread_ts"] == "1699999999.000100"
    assert body["blocks"] == report_blocks(report, link) and body["text"] == fallback_text(report)
    assert body["unfurl_links"] is False


def test_post_report_and_text_outside_a_thread(slack, report):
    client = notifier(slack)
    client.post_report("C0123", report)
    assert client.post_text("C0123", "investigating <alert> & co", thread_ts="1.000200") == "1700000000.000002"
    first, second = (r["json"] for r in slack.requests)
    assert "thread_ts" not in first and not any(b["type"] == "actions" for b in first["blocks"])
    assert second["text"] == "investigating &lt;alert&gt; &amp; co" and second["thread_ts"] == "1.000200"
    assert "blocks" not in second


def test_a_rate_limit_is_retried_after_retry_after(slack, report):
    slack.script = [(429, {"Retry-After": "1"}, b'{"ok": false, "error": "ratelimited"}')]
    started = time.monotonic()
    ts = notifier(slack).post_report("C0123", report)
    assert ts == "1700000000.000002" and len(slack.requests) == 2
    gap = slack.requests[1]["at"] - slack.requests[0]["at"]
    assert gap >= 1.0, f"retried after {gap:.2f} s, before Retry-After"
    assert time.monotonic() - started < 5
    assert slack.requests[0]["json"] == slack.requests[1]["json"], "the same message is sent again"


def test_a_server_error_is_retried(slack, report):
    slack.script = [(500, {"Content-Type": "text/html"}, b"<html>Internal Server Error</html>")]
    assert notifier(slack).post_report("C0123", report) == "1700000000.000002"
    assert len(slack.requests) == 2


def test_slack_errors_surface_with_their_code_and_are_not_retried(slack, report):
    slack.script = [(200, {}, b'{"ok": false, "error": "channel_not_found"}')]
    with pytest.raises(SlackDeliveryError) as info:
        notifier(slack).post_report("C-missing", report)
    assert info.value.error == "channel_not_found" and "channel_not_found" in str(info.value)
    assert len(slack.requests) == 1


def test_persistent_failures_give_up_after_the_retries(slack, report):
    slack.script = [(503, {"Content-Type": "text/plain"}, b"upstream unavailable")] * 3
    with pytest.raises(SlackDeliveryError) as info:
        notifier(slack, retries=2).post_report("C0123", report)
    assert info.value.error == "http_503" and info.value.status == 503
    assert len(slack.requests) == 3
    slack.requests.clear()
    slack.script = [(429, {"Retry-After": "0"}, b'{"ok": false, "error": "ratelimited"}')] * 2
    with pytest.raises(SlackDeliveryError) as info:
        notifier(slack, retries=1).post_text("C0123", "hello")
    assert info.value.error == "ratelimited" and len(slack.requests) == 2


def test_an_unreachable_slack_is_a_delivery_error(report):
    from tests.conftest import free_port

    client = SlackNotifier("xoxb-t", base_url=f"http://127.0.0.1:{free_port()}/api", retries=1, backoff=0.01,
                           timeout=2)
    with pytest.raises(SlackDeliveryError) as info:
        client.post_report("C0123", report)
    assert info.value.error.startswith("connection_error")
