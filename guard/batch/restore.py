"""Restore a batch's results: output rules over every answer, then its placeholders back.

A result line answers the request line with the same ``custom_id``; the maps say which url
it was and which placeholders its request got. Error results (the upstream refused or
failed the request) carry no model text and are passed on as they are. Requests that Guard
withheld at redaction get an error line of their own, so no ``custom_id`` goes missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guard.batch.check import check_result_line
from guard.batch.lines import BatchFileError, ResultLine, dump_line
from guard.batch.maps import BatchMaps
from guard.batch.pool import DEFAULT_CONCURRENCY, Progress, map_lines
from guard.batch.report import LineReport
from guard.redact import PlaceholderMap

if TYPE_CHECKING:
    from guard.engine import Guard


@dataclass
class RestoredBatch:
    lines: list[str] = field(repr=False)
    reports: list[LineReport]
    missing: int
    """Requests that were sent but have no line here (e.g. they are in the error file)."""

    def jsonl(self) -> bytes:
        return "".join(line + "\n" for line in self.lines).encode("utf-8")


def withheld_line(custom_id: str, code: str, message: str) -> str:
    """A result line in the batch output format for a request Guard did not let through."""
    return dump_line({"id": None, "custom_id": custom_id, "response": None,
                      "error": {"code": code, "message": message}})


async def restore_results(
    guard: Guard,
    results: Sequence[ResultLine],
    maps: BatchMaps,
    *,
    api_key: str | None = None,
    batch: Mapping[str, Any] | None = None,
    include_withheld: bool = True,
    progress: Progress | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    source: str = "batch results",
) -> RestoredBatch:
    unknown = [f"line {r.number}: its custom_id is not in the maps of batch {maps.ref} "
               "(results of another batch, or the wrong maps file?)"
               for r in results if r.custom_id not in maps.lines]
    if unknown:
        raise BatchFileError(source, unknown)

    async def restore_one(i: int) -> tuple[str, LineReport]:
        result = results[i]
        entry = maps.lines[result.custom_id]
        fields = {"ref": maps.ref, "phase": "result", "line": entry.line,
                  "result_line": result.number, **(batch or {})}
        async with guard.call(route=entry.url, api_key=api_key, batch=fields) as call:
            if result.status_code != 200 or not isinstance(result.body, dict):
                call.status = "upstream_error"
                call.error = f"http_{result.status_code}" if result.status_code else "batch_error"
                return dump_line(result.raw), LineReport(
                    result.number, result.custom_id, "upstream_error", None, None,
                    request_id=call.request_id, input_line=entry.line)
            call.use_placeholders(PlaceholderMap.from_originals(entry.placeholders))
            verdict = await check_result_line(call, entry.url, result.body)
            if verdict.body is None:
                line = withheld_line(result.custom_id, verdict.code or "guard.blocked",
                                     verdict.message or "")
            else:
                response = dict(result.raw["response"])
                response["body"] = verdict.body
                line = dump_line({**result.raw, "response": response})
            return line, LineReport(result.number, result.custom_id, verdict.decision,
                                    verdict.code, verdict.message, rules=verdict.rules,
                                    request_id=call.request_id, input_line=entry.line)

    done = await map_lines(restore_one, len(results), concurrency=concurrency, progress=progress)
    lines = [line for line, _ in done]
    reports = [report for _, report in done]
    seen = {r.custom_id for r in results}
    missing = 0
    for custom_id, entry in maps.lines.items():
        if custom_id in seen:
            continue
        if entry.withheld is None:
            missing += 1
        elif include_withheld:
            code, reason = entry.withheld
            lines.append(withheld_line(custom_id, code, reason))
            reports.append(LineReport(len(lines), custom_id, "block", code, reason,
                                      input_line=entry.line))
    return RestoredBatch(lines, reports, missing)
