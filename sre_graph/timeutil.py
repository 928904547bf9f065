"""Time parsing shared by the sources: RFC 3339 strings, epoch seconds/ms/ns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    """Parse the time formats the data sources emit into an aware UTC datetime.

    Accepts RFC 3339 strings (``Z`` or offsets, any fraction length), epoch
    numbers in s, ms, µs or ns (told apart by magnitude), Extended JSON
    ``{"$date": ...}`` and datetimes. Returns ``None`` for empty values.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, dict):
        inner = value.get("$date", value.get("$numberLong"))
        return parse_time(inner)
    if isinstance(value, (int, float)):
        number = float(value)
        if number > 1e17:
            number /= 1e9
        elif number > 1e14:
            number /= 1e6
        elif number > 1e11:
            number /= 1e3
        return datetime.fromtimestamp(number, tz=UTC)
    text = str(value).strip()
    if text.isdigit():
        return parse_time(int(text))
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        for ch in rest:
            if ch.isdigit():
                digits += ch
            else:
                break
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str:
    """Format as RFC 3339 UTC with a ``Z``, seconds precision."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_ms(value: datetime) -> int:
    """Epoch milliseconds."""
    return int(value.timestamp() * 1000)
