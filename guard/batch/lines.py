"""Batch files, line by line: OpenAI batch input lines and batch output (result) lines.

Parsing checks what every line needs whatever its url (JSON object, ``custom_id``,
``method``, ``url``, ``body`` / ``response``) and collects every problem with its line
number, so a user fixes a file in one go. Messages never quote a line's content: it may hold
personal data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from guard.errors import GuardError

MAX_SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class RequestLine:
    """One request of a batch input file (``number`` counts from 1, blank lines included)."""

    number: int
    custom_id: str
    url: str
    body: Mapping[str, Any]
    raw: Mapping[str, Any]
    """The whole line object, so fields Guard does not know are written back unchanged."""


@dataclass(frozen=True)
class ResultLine:
    """One line of a batch output (or error) file."""

    number: int
    custom_id: str
    status_code: int | None
    body: Any
    raw: Mapping[str, Any]


class BatchFileError(GuardError):
    """A batch file with lines that cannot be used; ``problems`` are ``line N: ...`` strings."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = problems[:MAX_SHOWN_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__(
            f"{source}: {len(problems)} problem(s), nothing was written:\n  " + "\n  ".join(shown)
            + (f"\n  … and {more} more" if more else ""))


def _objects(lines: Iterable[str], problems: list[str]) -> Iterable[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue  # blank lines carry nothing (a trailing newline, an editor's last line)
        try:
            value = json.loads(line)
        except ValueError as exc:
            column = getattr(exc, "colno", None)
            problems.append(f"line {number}: not valid JSON"
                            + (f" (column {column})" if column else ""))
            continue
        if not isinstance(value, dict):
            problems.append(f"line {number}: must be a JSON object, not {type(value).__name__}")
            continue
        yield number, value


def _custom_id(number: int, value: Mapping[str, Any], seen: dict[str, int],
               problems: list[str]) -> str | None:
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        problems.append(f"line {number}: 'custom_id' must be a non-empty string")
        return None
    first = seen.setdefault(custom_id, number)
    if first != number:
        problems.append(f"line {number}: 'custom_id' repeats the one on line {first}; "
                        "each request needs its own")
        return None
    return custom_id


def parse_requests(lines: Iterable[str], *, source: str = "batch input") -> list[RequestLine]:
    """Every request line, or :class:`BatchFileError` listing every problem."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    parsed: list[RequestLine] = []
    for number, value in _objects(lines, problems):
        before = len(problems)
        custom_id = _custom_id(number, value, seen, problems)
        if value.get("method") != "POST":
            problems.append(f"line {number}: 'method' must be \"POST\"")
        url = value.get("url")
        if not isinstance(url, str) or not url.startswith("/v1/"):
            problems.append(f"line {number}: 'url' must be an API path such as "
                            "\"/v1/chat/completions\"")
        body = value.get("body")
        if not isinstance(body, dict):
            problems.append(f"line {number}: 'body' must be a JSON object (the request body)")
        if len(problems) == before and custom_id is not None and isinstance(url, str) \
                and isinstance(body, dict):
            parsed.append(RequestLine(number, custom_id, url, body, value))
    if problems:
        raise BatchFileError(source, problems)
    if not parsed:
        raise BatchFileError(source, ["the file has no request lines"])
    return parsed


def parse_results(lines: Iterable[str], *, source: str = "batch results") -> list[ResultLine]:
    """Every result line (``custom_id``, ``response``, ``error``), or :class:`BatchFileError`."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    parsed: list[ResultLine] = []
    for number, value in _objects(lines, problems):
        before = len(problems)
        custom_id = _custom_id(number, value, seen, problems)
        response = value.get("response")
        status: int | None = None
        body: Any = None
        if response is not None:
            if not isinstance(response, dict) or not isinstance(response.get("status_code"), int):
                problems.append(f"line {number}: 'response' must be null or an object with an "
                                "integer 'status_code' and a 'body'")
            else:
                status, body = response["status_code"], response.get("body")
        elif value.get("error") is None:
            problems.append(f"line {number}: has neither a 'response' nor an 'error'")
        if len(problems) == before and custom_id is not None:
            parsed.append(ResultLine(number, custom_id, status, body, value))
    if problems:
        raise BatchFileError(source, problems)
    return parsed


def dump_line(value: Mapping[str, Any]) -> str:
    """One JSONL line (UTF-8 kept as is, no trailing newline)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
