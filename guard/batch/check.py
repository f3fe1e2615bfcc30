"""Where a batch line meets the engine: one function per direction, chosen by the line's url.

Only these two functions know which urls Guard can check: those of
:data:`guard.wire.API_ROUTES` (chat completions, responses, embeddings), each line checked
in its url's wire format. A line whose url is not checkable (``/v1/completions``, ...) is
never passed on unchecked: its request is withheld with code ``guard.unsupported_url`` and
its result, should one appear, is withheld too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guard.call import Call
from guard.errors import WireFormatError
from guard.values import Decision
from guard.wire import API_ROUTES, wire_format

CHECKED_URLS = frozenset(API_ROUTES)
"""Batch urls whose bodies the engine checks: exactly the routes of :data:`API_ROUTES`."""

_DESCRIBED = {"chat": "a chat completion request", "responses": "a Responses API request",
              "embeddings": "an embeddings request"}

UNSUPPORTED_CODE = "guard.unsupported_url"
INVALID_CODE = "guard.invalid_line"


@dataclass(frozen=True)
class LineVerdict:
    """What happened to one line: ``body`` is what may go on (``None``: withheld)."""

    decision: Decision
    body: dict[str, Any] | None
    code: str | None = None
    message: str | None = None
    entities: Mapping[str, int] = field(default_factory=dict)
    rules: tuple[str, ...] = ()

    @property
    def withheld(self) -> bool:
        return self.body is None


def _refuse(call: Call, code: str, message: str) -> LineVerdict:
    call.refuse(code, message)
    return LineVerdict("block", None, code, message)


def _unsupported(call: Call, url: str) -> LineVerdict:
    return _refuse(call, UNSUPPORTED_CODE,
                   f"Guard cannot check {url} lines, so this line was withheld; "
                   f"supported: {', '.join(sorted(CHECKED_URLS))}.")


async def check_request_line(call: Call, url: str, body: Mapping[str, Any]) -> LineVerdict:
    """The input pipeline over one batch request body (PII, input rules, moderation)."""
    api = API_ROUTES.get(url)
    if api is None:
        return _unsupported(call, url)
    try:
        verdict = await call.check_request(body, api=api)
    except WireFormatError as exc:
        if exc.code is not None:  # refused for a reason of its own (token ids, too much text)
            return _refuse(call, exc.code, str(exc))
        return _refuse(call, INVALID_CODE, f"The body is not {_DESCRIBED[api]}: {exc}")
    if verdict.blocked:
        return LineVerdict("block", None, verdict.code, verdict.message, verdict.entities,
                           tuple(h.rule_id for h in verdict.rule_hits))
    return LineVerdict(verdict.decision, verdict.body, entities=verdict.entities,
                       rules=tuple(h.rule_id for h in verdict.rule_hits))


async def check_result_line(call: Call, url: str, body: Any) -> LineVerdict:
    """The output rules over one batch result body, then its placeholders restored.

    A blocked answer is replaced as the policy says (chat: the rule's message with
    ``finish_reason: content_filter``; responses: an incomplete output item), so the line
    stays in the results. Embeddings results carry vectors, no text: they pass unchanged.
    """
    api = API_ROUTES.get(url)
    if api is None:
        return _unsupported(call, url)
    call.wire = wire_format(api)
    try:
        verdict = await call.check_response(body)
    except WireFormatError:
        call.status, call.error = "upstream_error", "unreadable_response"
        return LineVerdict("block", None, "guard.unreadable_response",
                           "The result could not be checked, so it was withheld.")
    return LineVerdict(verdict.decision, verdict.body,
                       "guard.output" if verdict.blocked else None,
                       "The answer was withheld by the output rules." if verdict.blocked else None,
                       rules=tuple(h.rule_id for h in verdict.rule_hits))
