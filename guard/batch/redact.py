"""Redact a batch input file: the input pipeline over every request line.

Each line is one :class:`~guard.call.Call` (its own pseudonyms, its own audit record). The
calls stay open until the caller knows where the redacted file went (:meth:`RedactedBatch.
finish`), so every record can name the upstream file id too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guard.batch.check import LineVerdict, check_request_line
from guard.batch.lines import RequestLine, dump_line
from guard.batch.maps import BatchMaps, LineMaps, new_ref
from guard.batch.pool import DEFAULT_CONCURRENCY, Progress, map_lines
from guard.batch.report import LineReport

if TYPE_CHECKING:
    from guard.call import Call
    from guard.engine import Guard


@dataclass
class RedactedBatch:
    """The result of :func:`redact_batch`: what to send, what to report, what to keep."""

    ref: str
    lines: list[str] = field(repr=False)
    """Redacted request lines (JSONL, no newline); withheld lines are not among them."""
    reports: list[LineReport]
    maps: BatchMaps
    _calls: list[Call] = field(repr=False)
    _verdicts: list[LineVerdict] = field(repr=False)

    def jsonl(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode("utf-8")

    def finish(self, status: str | None = None, **batch: Any) -> None:
        """Write every line's audit record, adding ``batch`` fields (``input_file=...``).

        ``status`` (e.g. ``upstream_error``) applies to the lines that were to be sent.
        """
        for call, verdict in zip(self._calls, self._verdicts, strict=True):
            if call.batch is not None:
                call.batch.update(batch)
            call.finish(status if status is not None and not verdict.withheld else None)


async def redact_batch(
    guard: Guard,
    requests: Sequence[RequestLine],
    *,
    api_key: str | None = None,
    batch: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> RedactedBatch:
    """Check every request line; on failure every audit record is still written."""
    ref = new_ref()
    calls = [guard.call(route=r.url, api_key=api_key,
                        batch={"ref": ref, "phase": "request", "line": r.number, **(batch or {})})
             for r in requests]
    try:
        verdicts = await map_lines(
            lambda i: check_request_line(calls[i], requests[i].url, requests[i].body),
            len(requests), concurrency=concurrency, progress=progress)
    except BaseException as exc:
        for call in calls:
            call.error = call.error or type(exc).__name__
            call.finish("error")
        raise

    maps = BatchMaps(ref, {"name": guard.policy.name, "sha256": guard.policy.sha256})
    lines: list[str] = []
    reports: list[LineReport] = []
    for request, call, verdict in zip(requests, calls, verdicts, strict=True):
        withheld = (verdict.code or "guard.blocked", verdict.message or "") if verdict.withheld \
            else None
        maps.lines[request.custom_id] = LineMaps(
            request.number, request.url, call.placeholders().originals(), withheld)
        if verdict.body is not None:
            lines.append(dump_line({**request.raw, "body": verdict.body}))
        reports.append(LineReport(request.number, request.custom_id, verdict.decision,
                                  verdict.code, verdict.message, verdict.entities, verdict.rules,
                                  call.request_id))
    return RedactedBatch(ref, lines, reports, maps, calls, verdicts)
