"""``--since 1d``, ``--until 2025-06-01``: times as reviewers type them, as records store them.

Records store ``ts`` as ISO 8601 text in UTC with milliseconds and ``Z``
(``2025-01-01T12:00:00.000Z``), so comparing text compares time, in SQLite and PostgreSQL
alike. Everything typed is turned into exactly that form.
"""

from __future__ import annotations

import datetime as dt
import re

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days",
          "w": "weeks"}


def format_ts(when: dt.datetime) -> str:
    """``when`` in the records' timestamp form (naive times are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    text = when.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_when(text: str, now: dt.datetime | None = None) -> str:
    """A time typed by a reviewer, as a record timestamp; ``ValueError`` says what is accepted.

    Accepted: relative ages (``90s``, ``15m``, ``12h``, ``1d``, ``2w``: that long before
    now), ``now``, ``today``, ``yesterday`` (midnight UTC), ISO dates (``2025-06-01``,
    midnight UTC) and ISO date-times (``2025-06-01T08:30``, ``...Z``, ``...+02:00``; without
    an offset, UTC).

    >>> parse_when("2025-06-01")
    '2025-06-01T00:00:00.000Z'
    >>> parse_when("1d", now=dt.datetime(2025, 6, 2, 12, tzinfo=dt.UTC))
    '2025-06-01T12:00:00.000Z'
    """
    now = now or dt.datetime.now(dt.UTC)
    value = text.strip()
    lowered = value.lower()
    if lowered == "now":
        return format_ts(now)
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if lowered == "today":
        return format_ts(midnight)
    if lowered == "yesterday":
        return format_ts(midnight - dt.timedelta(days=1))
    match = _RELATIVE.match(value)
    if match:
        amount, unit = float(match.group(1)), _UNITS[match.group(2).lower()]
        return format_ts(now - dt.timedelta(**{unit: amount}))
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return format_ts(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
        return format_ts(dt.datetime.fromisoformat(value))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use an age like 12h, 1d, 2w, a date like 2025-06-01 or "
            "a date-time like 2025-06-01T08:30Z") from None
