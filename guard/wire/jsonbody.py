"""Reading a request body as JSON, strictly: what Guard checks is exactly what goes upstream.

A lenient parser is a bypass: with a key given twice, Python keeps the last value while
another parser may keep the first, so Guard would check one ``messages`` and the upstream
read the other. So duplicate keys, ``NaN``/``Infinity`` (not JSON), invalid UTF-8 and
nesting too deep to handle are refused with a :class:`~guard.errors.WireFormatError`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from guard.errors import WireFormatError

MAX_DEPTH = 256
"""Deepest nesting accepted; OpenAI request bodies need well under 20 levels."""


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class _Duplicate(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Duplicate
    return obj


def _constant(name: str) -> Any:
    raise WireFormatError(f"The request body contains {name}, which is not valid JSON.")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a :class:`WireFormatError` that says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WireFormatError("The request body is not valid UTF-8.") from None
    if _too_deep(text):
        raise WireFormatError(f"The request body is nested deeper than {MAX_DEPTH} levels.")
    try:
        body = json.loads(text, object_pairs_hook=_unique, parse_constant=_constant)
    except _Duplicate:
        raise WireFormatError("The request body has an object with the same key twice.") from None
    except (ValueError, RecursionError):
        raise WireFormatError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise WireFormatError("The request body must be a JSON object.")
    if ("\\ud" in text or "\\uD" in text) and not _encodable(body):
        # A lone surrogate escape parses, but is no character: nothing downstream can encode it.
        raise WireFormatError("The request body contains an unpaired UTF-16 surrogate escape.")
    return body


def _encodable(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def _too_deep(text: str) -> bool:
    """Nesting deeper than :data:`MAX_DEPTH`? Counting brackets is a cheap upper bound; only
    a body with that many pays for the real scan (strings removed, then brackets counted)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False
