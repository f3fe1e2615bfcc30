"""Guarding a streamed chat completion: no text reaches the client before the rules saw it.

``StreamGuard`` sits between the upstream's SSE bytes and the client. Text deltas (content,
refusals, tool-call arguments) are held per choice in a window; when ``window_chars`` have
gathered, the output rules run over the window plus ``overlap_chars`` of already released
text, and everything but the last ``overlap_chars`` is released. A match of up to
``overlap_chars`` characters is therefore always seen whole before any of it is released,
wherever the chunk borders fall; a match that touches the end of what has arrived is held
until it ends. Placeholders are restored only once complete. At the end of a choice the
remainder is checked and released. Memory per stream is bounded by the window.

Usage (adapters)::

    stream = StreamGuard(call)
    async for data in upstream_bytes:
        out = await stream.feed(data)
        if out: await send_to_client(out)
        if stream.stopped: break          # a block: close the upstream now
    await send_to_client(await stream.finish())
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guard.redact import PLACEHOLDER
from guard.rules import RuleHit, redact_ranges
from guard.values import Decision, ModerationVerdict, most_severe
from guard.wire.sse import DONE, SSEEvent, SSEParser, format_event

if TYPE_CHECKING:
    from guard.call import Call

_PARTIAL_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*$|<$")
_CHUNK_KEYS = ("id", "object", "created", "model", "system_fingerprint", "service_tier")


@dataclass
class _Channel:
    """One stream of text: a choice's content or refusal, or one tool call's arguments."""

    choice: int
    kind: str  # "content" | "refusal" | "arguments"
    tool_index: int | None = None
    pending: str = ""
    tail: str = ""
    released_chars: int = 0
    closed: bool = False

    @property
    def in_json(self) -> bool:
        return self.kind == "arguments"


@dataclass
class _Outcome:
    hits: list[RuleHit] = field(default_factory=list)
    moderation: ModerationVerdict | None = None
    decision: Decision = "allow"


class StreamGuard:
    """Checks and restores one streamed chat completion; one instance per call."""

    def __init__(self, call: Call) -> None:
        self.call = call
        streaming = call.guard.policy.output.streaming
        self.window = streaming.window_chars
        self.overlap = streaming.overlap_chars
        self.enforced = call.guard.policy.mode == "enforce"
        self.restore = call.guard.policy.pii.restore_output
        self._max_chars = {r.id: r.when.max_chars for r in call.guard.rules.rules
                           if r.when.max_chars is not None}
        self._actions = {r.id: r.action for r in call.guard.rules.rules}
        self._parser = SSEParser()
        self._channels: dict[tuple[int, str, int | None], _Channel] = {}
        self._template: dict[str, Any] = {}
        self._outcome = _Outcome()
        self._done_sent = False
        self._saw_done = False
        self._failed = False
        self.stopped = False

    # -- the adapter's interface -------------------------------------------------------

    async def feed(self, data: bytes) -> bytes:
        """Upstream bytes in (split anywhere), bytes safe to release out (maybe empty)."""
        if self.stopped:
            return b""
        out = bytearray()
        for event in self._parser.feed(data):
            out += await self._event(event)
            if self.stopped:
                break
        return bytes(out) if self.enforced else data

    async def finish(self) -> bytes:
        """The upstream stream ended: check and release the rest, end with ``[DONE]``."""
        if self.stopped:
            return b""
        out = bytearray()
        for event in self._parser.close():
            out += await self._event(event)
        if not self.stopped:
            for channel in list(self._channels.values()):
                out += await self._release(channel, final=True)
            if not self._saw_done:
                # A stream that ends without [DONE] broke off: say so, never end silently.
                self.call.status, self.call.truncated = "upstream_error", True
                self.call.error = self.call.error or "stream_ended_early"
                out += self.error_event("The upstream stream ended before it was complete.")
        self._record()
        if not self.enforced:
            return b""  # monitor mode passed the upstream's own bytes on unaltered
        if not self._done_sent:
            out += DONE
            self._done_sent = True
        return bytes(out)

    def error_event(self, message: str, code: str = "guard.upstream_stream_error") -> bytes:
        """An error event the OpenAI SDKs raise as ``APIError``."""
        return format_event(json.dumps({"error": {"message": message, "type": "server_error",
                                                  "param": None, "code": code}}))

    # -- events ------------------------------------------------------------------------

    async def _event(self, event: SSEEvent) -> bytes:
        if event.data == "[DONE]":
            self._saw_done = True
            out = bytearray()
            for channel in list(self._channels.values()):
                out += await self._release(channel, final=True)
            if not self.stopped and not self._done_sent:
                out += DONE
                self._done_sent = True
            return bytes(out)
        if not event.data.strip():
            return b""  # an empty event (a keep-alive) carries nothing to check
        try:
            chunk = json.loads(event.data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            return await self._unreadable()
        if "error" in chunk:
            self.call.status, self.call.truncated = "upstream_error", True
            self.call.error = "stream_error_event"
            out = bytearray()
            for channel in list(self._channels.values()):
                out += await self._release(channel, final=True)
            return bytes(out) + format_event(event.data)
        for key in _CHUNK_KEYS:
            if key in chunk:
                self._template[key] = chunk[key]
        if isinstance(chunk.get("model"), str) and self.call.model is None:
            self.call.model = chunk["model"]
        if chunk.get("usage"):
            from guard.pricing import usage_of

            self.call.usage = usage_of(chunk) or self.call.usage
        out = bytearray()
        passthrough_choices = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            released, rest = await self._absorb(choice)
            out += released
            if self.stopped:
                return bytes(out)
            index = int(choice.get("index", 0))
            if choice.get("finish_reason") is not None:
                for channel in self._channels_of(index):
                    out += await self._release(channel, final=True)
                    channel.closed = True
                if self.stopped:
                    return bytes(out)
            if rest is not None:
                passthrough_choices.append(rest)
        if passthrough_choices or (chunk.get("usage") and not chunk.get("choices")):
            out += self._chunk(passthrough_choices, usage=chunk.get("usage"))
        return bytes(out)

    async def _unreadable(self) -> bytes:
        """Upstream data that is not a JSON chunk: never passed on unchecked, and never
        skipped silently either — release what was checked, then end with an error."""
        self.call.status, self.call.truncated = "upstream_error", True
        self.call.error = "malformed_sse"
        out = bytearray()
        for channel in list(self._channels.values()):
            out += await self._release(channel, final=True)
        if self.stopped:
            return bytes(out)
        self._failed = self.stopped = True
        self._record()
        self._done_sent = True
        return bytes(out) + self.error_event(
            "The upstream sent a stream event Guard could not read; the rest was withheld.") + DONE

    async def _absorb(self, choice: dict[str, Any]) -> tuple[bytes, dict[str, Any] | None]:
        """Move a delta's text into channels: (text released by that, what else may pass now)."""
        index = int(choice.get("index", 0))
        delta = dict(choice.get("delta") or {})
        released = bytearray()
        for kind in ("content", "refusal"):
            text = delta.pop(kind, None)
            if isinstance(text, str) and text:
                released += await self._append(self._channel(index, kind, None), text)
                if self.stopped:
                    return bytes(released), None
        calls = delta.pop("tool_calls", None)
        kept_calls = []
        if isinstance(calls, list):
            for call in calls:
                if not isinstance(call, dict):
                    continue
                tool_index = int(call.get("index", 0))
                function = dict(call.get("function") or {})
                arguments = function.pop("arguments", None)
                if isinstance(arguments, str) and arguments:
                    channel = self._channel(index, "arguments", tool_index)
                    released += await self._append(channel, arguments)
                    if self.stopped:
                        return bytes(released), None
                meta = {k: v for k, v in call.items() if k != "function"}
                if function or len(meta) > 1:
                    kept_calls.append({**meta, "function": {**function, "arguments": ""}})
        if kept_calls:
            delta["tool_calls"] = kept_calls
        finish = choice.get("finish_reason")
        if not delta and finish is None:
            return bytes(released), None
        # logprobs carry the tokens themselves: they would be unchecked text.
        return bytes(released), {"index": index, "delta": delta, "finish_reason": finish,
                                 "logprobs": None}

    def _channel(self, choice: int, kind: str, tool_index: int | None) -> _Channel:
        key = (choice, kind, tool_index)
        if key not in self._channels:
            self._channels[key] = _Channel(choice, kind, tool_index)
        return self._channels[key]

    def _channels_of(self, choice: int) -> list[_Channel]:
        return [c for c in self._channels.values() if c.choice == choice and not c.closed]

    async def _append(self, channel: _Channel, text: str) -> bytes:
        channel.pending += text
        if len(channel.pending) >= self.window:
            return await self._release(channel, final=False)
        return b""

    # -- checking and releasing ----------------------------------------------------------

    async def _release(self, channel: _Channel, *, final: bool) -> bytes:
        if self.stopped or not channel.pending:
            return b""
        window = channel.tail + channel.pending
        offset = len(channel.tail)
        outcome = await self.call.evaluate_rules([window])
        if outcome.moderation is not None:
            self._outcome.moderation = outcome.moderation
        hits = [h for h in outcome.hits[0]
                if h.rule_id not in self._max_chars and any(e > offset for _, e in h.ranges)]
        hits += self._length_hits(channel)
        blocking = [h for h in hits if h.action == "block"]
        failed = self.call.output_moderation_failed(outcome)
        self._note(hits)
        if (blocking or failed) and self.enforced:
            self.stopped = True
            return self._block_chunk(channel.choice, self.call.block_message(blocking))
        cut = len(channel.pending) if final else self._cut(channel, hits, offset)
        if cut <= 0:
            return b""
        raw = channel.pending[:cut]
        local = [RuleHit(h.rule_id, h.action, tuple((s - offset, e - offset) for s, e in h.ranges
                                                    if s >= offset and e - offset <= cut))
                 for h in hits if h.action == "redact"]
        text = redact_ranges(raw, local)
        if self.restore:
            text = self._restore(text, json_escape=channel.in_json)
        channel.tail = (channel.tail + raw)[-self.overlap:] if self.overlap else ""
        channel.pending = channel.pending[cut:]
        channel.released_chars += cut
        if not text:
            return b""
        self.call.mark_first_token()
        return self._text_chunk(channel, text)

    def _cut(self, channel: _Channel, hits: list[RuleHit], offset: int) -> int:
        """How much of the pending text can go now without cutting a match or placeholder."""
        pending = channel.pending
        cut = len(pending) - self.overlap
        for hit in hits:
            if hit.action != "redact":
                continue  # only redactions change text; a warn needs nothing held back
            for start, end in hit.ranges:
                start_p, end_p = start - offset, end - offset
                if end_p >= len(pending) or start_p < cut < end_p:
                    cut = min(cut, max(start_p, 0))
        for match in PLACEHOLDER.finditer(pending):
            if match.start() < cut < match.end():
                cut = match.start()
        partial = _PARTIAL_PLACEHOLDER.search(pending)
        if partial is not None:
            cut = min(cut, partial.start())
        return max(cut, 0)

    def _length_hits(self, channel: _Channel) -> list[RuleHit]:
        hits = []
        total = channel.released_chars + len(channel.pending)
        for rule_id, limit in self._max_chars.items():
            if limit is not None and total > limit:
                start = max(limit - channel.released_chars, 0) + len(channel.tail)
                hits.append(RuleHit(rule_id, self._actions[rule_id],
                                    ((start, len(channel.tail) + len(channel.pending)),)))
        return hits

    def _restore(self, text: str, *, json_escape: bool) -> str:
        if not json_escape:
            return self.call.restore(text)
        return PLACEHOLDER.sub(
            lambda m: json.dumps(self.call.restore(m.group(0)))[1:-1], text)

    def _note(self, hits: list[RuleHit]) -> None:
        known = {(h.rule_id, h.action) for h in self._outcome.hits}
        for hit in hits:
            if (hit.rule_id, hit.action) not in known:
                self._outcome.hits.append(hit)
                known.add((hit.rule_id, hit.action))
        actions = [h.action for h in self._outcome.hits]
        self._outcome.decision = most_severe(
            *("block" if a == "block" else "redact" if a == "redact" else "warn" for a in actions))

    def _record(self) -> None:
        decision = "block" if self.stopped and not self._failed else self._outcome.decision
        self.call.record_output(decision, self._outcome.hits, self._outcome.moderation)

    # -- writing chunks ------------------------------------------------------------------

    def _chunk(self, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        chunk = {**self._template, "object": "chat.completion.chunk", "choices": choices}
        if usage is not None:
            chunk["usage"] = usage
        return format_event(json.dumps(chunk, ensure_ascii=False))

    def _text_chunk(self, channel: _Channel, text: str) -> bytes:
        delta: dict[str, Any]
        if channel.kind == "arguments":
            delta = {"tool_calls": [{"index": channel.tool_index,
                                     "function": {"arguments": text}}]}
        else:
            delta = {channel.kind: text}
        return self._chunk([{"index": channel.choice, "delta": delta, "finish_reason": None,
                             "logprobs": None}])

    def _block_chunk(self, choice: int, message: str) -> bytes:
        self._record()
        self._done_sent = True
        return self._chunk([{"index": choice, "delta": {"content": message},
                             "finish_reason": "content_filter", "logprobs": None}]) + DONE
