"""Guarding a streamed chat completion: no text reaches the client before the rules saw it.

``StreamGuard`` sits between the upstream's SSE bytes and the client. Text deltas (content,
refusals, tool-call arguments) are held per *channel* (one choice's content or refusal, one
tool call's arguments). The work is split in two, so that checking never stalls receiving:

1. **Analyse, concurrently with receiving.** As soon as ``window_chars`` new characters of
   a channel have arrived, they go — with ``overlap_chars`` of left context — to one
   analysis (PII detection and output moderation, the costly part) in a task of its own,
   while the upstream is still being read. One analysis per stream runs at a time: what
   arrives meanwhile becomes the next window, so a slow check means fewer, larger windows,
   never one call per token — and a busy worker's NER pool never holds more than one job
   per stream (a deeper queue only made every window, the first included, wait longer).
2. **Decide and release, in order.** When a window's analysis is back, and every earlier
   window has been decided, the cheap rules (regex, keywords, ``max_chars``) run over the
   window plus the already released left context, and everything but the last
   ``overlap_chars`` is released (minus a match or placeholder that reaches the end of what
   was analysed, which waits for more text). A match of up to ``overlap_chars`` characters
   is therefore always seen whole before any of it is released, wherever chunk and window
   borders fall. At the end of a choice the remainder is analysed, decided and released.

At most :data:`MAX_WINDOWS_IN_FLIGHT` windows per stream wait for their release, and at
most that many windows' worth of text waits for its analysis; beyond that, reading waits
(back-pressure), so memory per stream is bounded by the window, not by the answer's length.
Placeholders are restored only once complete.

Two ways to drive it (an adapter picks one):

    # 1. pull: what is ready comes back from each call (the SDK wrappers)
    out = await stream.feed(data)        # for each upstream read
    out = await stream.finish()          # at the end of the upstream body

    # 2. push: read and write concurrently (the middleware), so released text goes out
    #    as soon as it is checked, even while the upstream is silent
    await stream.ingest(data)            # reader side, for each upstream read
    stream.end_input()                   # reader side, at the end of the upstream body
    async for out in stream.releases():  # writer side
        ...

``stopped`` turns true on a block (the block chunk and ``[DONE]`` are the last bytes out):
the adapter closes the upstream then. ``aclose()`` cancels what is still running (a
client went away) and records what was decided so far.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from guard.pricing import usage_of
from guard.redact import PLACEHOLDER
from guard.rules import Analysis, RuleHit, redact_ranges
from guard.values import Decision, ModerationVerdict, Span, most_severe
from guard.wire.sse import DONE, SSEEvent, SSEParser, format_event

if TYPE_CHECKING:
    from guard.call import Call

logger = logging.getLogger(__name__)

MAX_WINDOWS_IN_FLIGHT = 4
"""Windows per stream that may wait for release (and windows' worth of text that may wait
for analysis) before reading pauses."""

_PARTIAL_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*$|<$")
_CHUNK_KEYS = ("id", "object", "created", "model", "system_fingerprint", "service_tier")
_VERDICT_RANK = {"skipped": 0, "pass": 1, "flagged": 2, "error": 3}


@dataclass
class _Channel:
    """One stream of text: a choice's content or refusal, or one tool call's arguments.

    Positions (``released``, ``submitted``, spans, carried hits) count characters from the
    start of the channel, so they stay valid while text moves from pending to released.
    """

    choice: int
    kind: str  # "content" | "refusal" | "arguments"
    tool_index: int | None = None
    pending: str = ""
    """Received, not yet released (raw: placeholders not restored)."""
    tail: str = ""
    """The last ``overlap_chars`` released (raw): left context for the next check."""
    released: int = 0
    """Characters released so far: the position of ``pending[0]``."""
    submitted: int = 0
    """Position up to which text has gone to an analysis."""
    spans: list[Span] = field(default_factory=list)
    """PII found so far, at channel positions; dropped once released."""
    carried: list[RuleHit] = field(default_factory=list)
    """Moderation redactions at channel positions, applied until released."""
    closed: bool = False

    @property
    def received(self) -> int:
        return self.released + len(self.pending)

    @property
    def in_json(self) -> bool:
        return self.kind == "arguments"


@dataclass
class _Outcome:
    hits: list[RuleHit] = field(default_factory=list)
    moderation: ModerationVerdict | None = None
    decision: Decision = "allow"
    entities: set[tuple[int, str, int | None, int, int, str]] = field(default_factory=set)


_Item: TypeAlias = "bytes | asyncio.Task[bytes]"


class StreamGuard:
    """Checks and restores one streamed chat completion; one instance per call."""

    def __init__(self, call: Call) -> None:
        self.call = call
        streaming = call.guard.policy.output.streaming
        self.window = streaming.window_chars
        self.overlap = streaming.overlap_chars
        self.enforced = call.guard.policy.mode == "enforce"
        self.restore = call.guard.policy.pii.restore_output
        self._rules = call.guard.rules
        self._max_chars = {r.id: r.when.max_chars for r in self._rules.rules
                           if r.when.max_chars is not None}
        self._actions = {r.id: r.action for r in self._rules.rules}
        self._parser = SSEParser()
        self._channels: dict[tuple[int, str, int | None], _Channel] = {}
        self._template: dict[str, Any] = {}
        self._outcome = _Outcome()
        self._items: deque[_Item] = deque()
        """What goes to the client, in order: bytes, or a window's decision to come."""
        self._windows: deque[asyncio.Task[bytes]] = deque()
        """Windows not yet retired (released, or decided in monitor mode)."""
        self._last: asyncio.Task[bytes] | None = None
        self._analysing = 0
        """Analyses running (at most one, plus the finals at the end of a choice)."""
        self._arrived = asyncio.Event()
        self._retired = asyncio.Event()
        self._input_ended = False
        self._output_ended = False
        self._stop_task: asyncio.Task[bytes] | None = None
        self._end_task: asyncio.Task[bytes] | None = None
        self._saw_done = False
        self._saw_error = False
        self._recorded = False
        self.stopped = False
        self.delivered = False
        """The stream's last event (``[DONE]``, a Responses terminal event) was handed out:
        a client that hangs up from then on did not disconnect early."""

    # -- pull: one call per upstream read ----------------------------------------------

    @property
    def complete(self) -> bool:
        """The upstream sent ``[DONE]``: nothing after it reaches the client."""
        return self._saw_done

    async def feed(self, data: bytes) -> bytes:
        """Upstream bytes in (split anywhere); out, the bytes that are safe to release now.

        Returns without waiting for checks still running, unless too many windows are in
        flight: then it waits for the oldest, which bounds memory.
        """
        if self.stopped or self._output_ended:
            return self._ready()  # a block decided since the last call goes out now
        self._ingest(data)
        out = bytearray(self._ready())
        while not self._output_ended and self._too_many_windows():
            if self.enforced:
                out += await self._next() or b""
            else:
                await self._retire_monitored()
        return bytes(out)

    async def finish(self) -> bytes:
        """The upstream body ended: check and release the rest, end with ``[DONE]``."""
        self.end_input()
        out = bytearray()
        while (data := await self._next()) is not None:
            out += data
        return bytes(out)

    # -- push: reader and writer run concurrently ---------------------------------------

    async def ingest(self, data: bytes) -> None:
        """Reader side: upstream bytes in; waits while too many windows are in flight."""
        if self.stopped or self._output_ended:
            return
        self._ingest(data)
        while not (self.stopped or self._output_ended) and self._too_many_windows():
            if self.enforced:
                self._retired.clear()
                await self._retired.wait()
            else:
                await self._retire_monitored()

    def end_input(self) -> None:
        """Reader side: the upstream body ended (completely or not; ``[DONE]`` tells)."""
        if self._input_ended or self.stopped:
            return
        self._input_ended = True
        for event in self._parser.close():
            self._event(event)
        self._finals(list(self._channels.values()))
        self._end_task = self._chain(self._end(self._last))
        self._push(self._end_task)

    async def releases(self) -> AsyncIterator[bytes]:
        """Writer side: checked bytes, in order, as soon as they are decided; ends after
        ``[DONE]``, a block, or an error event."""
        while (data := await self._next()) is not None:
            if data:
                yield data

    async def aclose(self) -> None:
        """Stop everything still running (the client went away); record what was decided."""
        self._output_ended = True
        pending = [t for t in (*self._windows, *self._tasks_in_items()) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        self._items.clear()
        self._windows.clear()
        self._record()

    def error_event(self, message: str, code: str = "guard.upstream_stream_error") -> bytes:
        """An error event the OpenAI SDKs raise as ``APIError``."""
        return format_event(json.dumps({"error": {"message": message, "type": "server_error",
                                                  "param": None, "code": code}}))

    # -- the output queue -------------------------------------------------------------

    def _push(self, item: _Item) -> None:
        self._items.append(item)
        self._arrived.set()

    def _ready(self) -> bytes:
        """Everything at the head of the queue that is decided already."""
        out = bytearray()
        while self._items and not self._output_ended:
            head = self._items[0]
            if isinstance(head, asyncio.Task) and not head.done():
                break
            out += self._take(self._items.popleft(), head.result() if isinstance(
                head, asyncio.Task) else head)
        return bytes(out)

    async def _next(self) -> bytes | None:
        """The next bytes out, in order (waiting for their check); ``None`` at the end."""
        while not self._output_ended:
            if not self._items:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            head = self._items[0]
            data = await head if isinstance(head, asyncio.Task) else head
            return self._take(self._items.popleft(), data)
        return None

    def _take(self, item: _Item, data: bytes) -> bytes:
        if isinstance(item, asyncio.Task):
            if item in self._windows and self.enforced:
                self._windows.remove(item)
                self._retired.set()
            if item is self._stop_task or item is self._end_task:
                self._output_ended = True
                self._cancel_rest()
        if self._saw_done and data and all(i is self._end_task for i in self._items):
            self.delivered = True  # nothing follows the end but the record
        return data

    def _tasks_in_items(self) -> Iterable[asyncio.Task[bytes]]:
        return (i for i in self._items if isinstance(i, asyncio.Task))

    def _too_many_windows(self) -> bool:
        if not self.enforced:
            while self._windows and self._windows[0].done():
                self._windows.popleft()
        backlog = max((c.received - c.submitted for c in self._channels.values()), default=0)
        return (len(self._windows) > MAX_WINDOWS_IN_FLIGHT
                or backlog > MAX_WINDOWS_IN_FLIGHT * self.window)

    async def _retire_monitored(self) -> None:
        await asyncio.wait({self._windows[0]})
        self._too_many_windows()

    def _cancel_rest(self) -> None:
        for task in (*self._windows, *self._tasks_in_items()):
            if not task.done():
                task.cancel()
        self._items.clear()
        self._windows.clear()
        self._retired.set()

    def _chain(self, coro: Coroutine[Any, Any, bytes]) -> asyncio.Task[bytes]:
        task = asyncio.ensure_future(coro)
        self._last = task
        return task

    # -- events (synchronous: they only move text and start analyses) ----------------------

    def _ingest(self, data: bytes) -> None:
        if not self.enforced:
            self._push(data)  # monitor mode: the upstream's own bytes, unaltered, at once
        try:
            events = self._parser.feed(data)
        except ValueError:  # one event beyond the parser's limit: the stream cannot go on
            self._upstream_failed("event_too_large")
            self.end_input()
            return
        for event in events:
            self._event(event)
        self._submit_full()

    def _submit_full(self) -> None:
        """Start the next analysis if none is running and a window's worth has arrived."""
        for channel in self._channels.values():
            if self._analysing:
                return
            if not channel.closed and channel.received - channel.submitted >= self.window:
                self._submit(channel, final=False)

    def _event(self, event: SSEEvent) -> None:
        if self._saw_done or self._saw_error:
            return  # nothing after the end (or an error) reaches the client
        if event.data == "[DONE]":
            self._saw_done = True
            self._finals(list(self._channels.values()))
            if self.enforced:
                self._push(DONE)
            return
        if not event.data.strip():
            return  # an empty event (a keep-alive) carries nothing to check
        try:
            data = json.loads(event.data)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Unreadable data is never passed on unchecked, nor skipped silently: release
            # what was checked, then end with an error event.
            self._upstream_error("malformed_sse")
            self._send(lambda: self.error_event(
                "The upstream sent a stream event Guard could not read; the rest was withheld."))
            return
        if self._is_error(event, data):
            self._upstream_error("stream_error_event")
            self._send(lambda: self._error_out(event, data))
            return
        self._data(event, data)

    # -- the dialect: hooks a subclass overrides for another stream format -----------------

    _TERMINATOR = DONE
    """What ends the stream after an error event of Guard's own (Responses streams: nothing)."""

    def _is_error(self, event: SSEEvent, data: dict[str, Any]) -> bool:
        """``data`` is the upstream's error event (the stream ends with it)."""
        return "error" in data

    def _error_out(self, event: SSEEvent, data: dict[str, Any]) -> bytes:
        """The upstream's error event as the client gets it."""
        return format_event(event.data)

    def _send(self, build: Callable[[], bytes]) -> None:
        """Queue an event for the client (enforce mode only: monitor mode passes the
        upstream's bytes on). Chat chunks are built at once; a dialect whose events describe
        what was released (or are numbered) builds them in turn, see ``_send_in_turn``."""
        if self.enforced:
            self._push(build())

    def _send_in_turn(self, build: Callable[[], bytes]) -> None:
        """Queue an event built only once everything queued before it is decided."""
        if self.enforced:
            self._push(self._chain(self._in_turn(build, self._last)))

    async def _in_turn(self, build: Callable[[], bytes],
                       previous: asyncio.Task[bytes] | None) -> bytes:
        if previous is not None:
            await asyncio.wait({previous})
        return b"" if self.stopped else build()

    def _data(self, event: SSEEvent, chunk: dict[str, Any]) -> None:
        """One readable, non-error event: move its text into channels, queue the rest."""
        for key in _CHUNK_KEYS:
            if key in chunk:
                self._template[key] = chunk[key]
        if isinstance(chunk.get("model"), str) and self.call.model is None:
            self.call.model = chunk["model"]
        if chunk.get("usage"):
            self.call.usage = usage_of(chunk) or self.call.usage
        passthrough = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            rest = self._absorb(choice)
            if choice.get("finish_reason") is not None:
                index = int(choice.get("index", 0))
                self._finals([c for c in self._channels.values() if c.choice == index])
            if rest is not None:
                passthrough.append(rest)
        if self.enforced and (passthrough or (chunk.get("usage") and not chunk.get("choices"))):
            self._push(self._chunk(passthrough, usage=chunk.get("usage")))

    def _absorb(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        """Move a delta's text into channels; what else of the choice may pass."""
        index = int(choice.get("index", 0))
        delta = dict(choice.get("delta") or {})
        for kind in ("content", "refusal"):
            text = delta.pop(kind, None)
            if isinstance(text, str) and text:
                self._channel(index, kind, None).pending += text
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
                    self._channel(index, "arguments", tool_index).pending += arguments
                meta = {k: v for k, v in call.items() if k != "function"}
                if function or len(meta) > 1:
                    kept_calls.append({**meta, "function": {**function, "arguments": ""}})
        if kept_calls:
            delta["tool_calls"] = kept_calls
        finish = choice.get("finish_reason")
        if not delta and finish is None:
            return None
        # logprobs carry the tokens themselves: they would be unchecked text.
        return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}

    def _channel(self, choice: int, kind: str, tool_index: int | None) -> _Channel:
        key = (choice, kind, tool_index)
        if key not in self._channels:
            self._channels[key] = _Channel(choice, kind, tool_index)
        return self._channels[key]

    def _finals(self, channels: list[_Channel]) -> None:
        for channel in channels:
            if not channel.closed:
                self._submit(channel, final=True)
                channel.closed = True

    def _upstream_error(self, error: str) -> None:
        """The upstream's stream ended in error: release what was checked, then stop."""
        self._saw_error = True
        self.call.status, self.call.truncated = "upstream_error", True
        self.call.error = error
        self._finals(list(self._channels.values()))

    def _upstream_failed(self, error: str) -> None:
        self.call.status, self.call.truncated = "upstream_error", True
        self.call.error = self.call.error or error

    # -- windows ----------------------------------------------------------------------

    def _submit(self, channel: _Channel, *, final: bool) -> None:
        """Start the analysis of what arrived since the last window (plus left context)."""
        frontier = channel.received
        new = frontier > channel.submitted
        held_from = channel.released - len(channel.tail)
        start = max(channel.submitted - self.overlap, held_from)
        text = (channel.tail + channel.pending)[start - held_from:]
        channel.submitted = frontier
        if not new and not (final and channel.pending):
            return
        if new:
            self._analysing += 1
        task = self._chain(self._window(channel, start, text if new else "", frontier, final,
                                        self._last))
        self._windows.append(task)
        if self.enforced:
            self._push(task)

    async def _window(self, channel: _Channel, start: int, text: str, frontier: int,
                      final: bool, previous: asyncio.Task[bytes] | None) -> bytes:
        analysis: Analysis | None = None
        failure: str | None = None
        if text:
            try:
                analysis = await self.call.analyze_output([text])
            except Exception as exc:  # a checker bug must never let text through unchecked
                failure = type(exc).__name__
                logger.error("output check failed in a stream: %s", failure)
            finally:
                self._analysing -= 1
            if not self.stopped:
                self._submit_full()  # what arrived meanwhile is the next window
            self._retired.set()
        if previous is not None:
            await asyncio.wait({previous})  # decide in order; its own errors surface there
        if self.stopped:
            return b""
        if failure is not None:
            self.call.error = f"output_check_failed:{failure}"
            if not self.enforced:
                return b""  # monitor mode has passed the text on already; the record says why
            self.call.status = "error"
            return self._stop(self.error_event("The answer could not be checked and was withheld.",
                                               code="guard.output_check_failed")
                              + self._TERMINATOR)
        return self._decide(channel, start, frontier, analysis, final)

    def _decide(self, channel: _Channel, start: int, frontier: int, analysis: Analysis | None,
                final: bool) -> bytes:
        """Run the rules over the window, then release what is safe (in order, no awaits)."""
        verdict = analysis.moderation if analysis is not None else None
        if analysis is not None:
            channel.spans.extend(Span(s.start + start, s.end + start, s.label, s.score)
                                 for s in analysis.spans[0])
            self._keep_verdict(verdict)
        base = channel.released - len(channel.tail)
        offset = len(channel.tail)
        pending = channel.pending[:frontier - channel.released]
        window = channel.tail + pending
        spans = [Span(s.start - base, s.end - base, s.label, s.score) for s in channel.spans
                 if s.start >= base and s.end <= frontier]
        hits = [_shift(h, -base) for h in channel.carried]
        for hit in self._rules.match(window, spans, verdict):
            if hit.rule_id in self._max_chars:
                continue
            if self._rules.is_moderation_rule(hit.rule_id):
                # Moderation judges the window's new text as a whole, not a position in it;
                # a redaction stays with that text until all of it is released.
                hit = RuleHit(hit.rule_id, hit.action,
                              ((max(start - base, offset), len(window)),), hit.entities)
                if hit.action == "redact":
                    channel.carried.append(_shift(hit, base))
            hits.append(hit)
        hits = [h for h in hits if any(e > offset for _, e in h.ranges)]
        hits += self._length_hits(channel, frontier)
        self._note(channel, hits, [s for s in spans if s.end > offset], base)
        blocking = [h for h in hits if h.action == "block"]
        if blocking or self.call.output_moderation_failed(verdict):
            self._outcome.decision = "block"  # also in monitor mode: what would have happened
        if self.enforced and self._outcome.decision == "block":
            return self._stop(self._block_chunk(channel, self.call.block_message(blocking)))
        cut = len(pending) if final else self._cut(pending, hits, offset)
        if cut <= 0:
            return b""
        raw = channel.pending[:cut]
        local = [RuleHit(h.rule_id, h.action, tuple(
            (max(s - offset, 0), e - offset) for s, e in h.ranges if e > offset and s - offset < cut))
            for h in hits if h.action == "redact"]
        text = redact_ranges(raw, local)
        if self.restore:
            text = self._restore(text, json_escape=channel.in_json)
        channel.tail = (channel.tail + raw)[-self.overlap:] if self.overlap else ""
        channel.pending = channel.pending[cut:]
        channel.released += cut
        kept_from = channel.released - len(channel.tail)
        channel.spans = [s for s in channel.spans if s.end > kept_from]
        channel.carried = [h for h in channel.carried if any(e > channel.released for _, e in h.ranges)]
        if not text or not self.enforced:
            return b""
        self.call.mark_first_token()
        return self._text_chunk(channel, text)

    def _cut(self, pending: str, hits: list[RuleHit], offset: int) -> int:
        """How much of the pending text can go now without cutting a match or placeholder."""
        cut = len(pending) - self.overlap
        for hit in hits:
            if hit.action != "redact":
                continue  # only redactions change text; a warn needs nothing held back
            for start, end in hit.ranges:
                start_p, end_p = start - offset, end - offset
                if start_p < 0:
                    continue  # began in released text: its pending part is redacted as it goes
                if end_p >= len(pending) or start_p < cut < end_p:
                    cut = min(cut, start_p)
        for match in PLACEHOLDER.finditer(pending):
            if match.start() < cut < match.end():
                cut = match.start()
        partial = _PARTIAL_PLACEHOLDER.search(pending)
        if partial is not None:
            cut = min(cut, partial.start())
        return max(cut, 0)

    def _length_hits(self, channel: _Channel, frontier: int) -> list[RuleHit]:
        hits = []
        for rule_id, limit in self._max_chars.items():
            if limit is not None and frontier > limit:
                base = channel.released - len(channel.tail)
                hits.append(RuleHit(rule_id, self._actions[rule_id],
                                    ((max(limit, channel.released) - base, frontier - base),)))
        return hits

    def _restore(self, text: str, *, json_escape: bool) -> str:
        if not json_escape:
            return self.call.restore(text)
        return PLACEHOLDER.sub(
            lambda m: json.dumps(self.call.restore(m.group(0)))[1:-1], text)

    # -- what was decided ----------------------------------------------------------------

    def _note(self, channel: _Channel, hits: list[RuleHit], spans: list[Span], base: int) -> None:
        known = {(h.rule_id, h.action) for h in self._outcome.hits}
        for hit in hits:
            if (hit.rule_id, hit.action) not in known:
                self._outcome.hits.append(hit)
                known.add((hit.rule_id, hit.action))
        labels = {label for hit in hits for label in hit.entities}
        counted = []
        for span in spans:
            # A value is seen again in the next window's context: count it once.
            key = (channel.choice, channel.kind, channel.tool_index, span.start + base,
                   span.end + base, span.label)
            if span.label in labels and key not in self._outcome.entities:
                self._outcome.entities.add(key)
                counted.append(span.label)
        if counted:
            self.call.note_output_entities([RuleHit("", "", (), tuple(counted))])
        self._outcome.decision = most_severe(self._outcome.decision, *(
            "block" if h.action == "block" else "redact" if h.action == "redact" else "warn"
            for h in self._outcome.hits))

    def _keep_verdict(self, verdict: ModerationVerdict | None) -> None:
        """The record keeps the most telling verdict: an error, else a flag, else the last."""
        if verdict is None:
            return
        kept = self._outcome.moderation
        if kept is None or _rank(verdict) >= _rank(kept):
            self._outcome.moderation = verdict

    def _record(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        decision = "block" if self.stopped else self._outcome.decision
        self.call.record_output(decision, self._outcome.hits, self._outcome.moderation)

    async def _end(self, previous: asyncio.Task[bytes] | None) -> bytes:
        if previous is not None:
            await asyncio.wait({previous})
        if self.stopped:
            return b""
        out = b""
        if not self._saw_done and not self._saw_error:
            # A stream that ends without [DONE] broke off: say so, never end silently.
            self._upstream_failed("stream_ended_early")
            out += self.error_event("The upstream stream ended before it was complete.")
        self._record()
        if not self.enforced:
            return b""  # monitor mode passed the upstream's own bytes on unaltered
        return out if self._saw_done else out + self._TERMINATOR

    def _stop(self, last: bytes) -> bytes:
        self.stopped = True
        self._stop_task = asyncio.current_task()
        self._record()
        return last

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

    def _block_chunk(self, channel: _Channel, message: str) -> bytes:
        """The last bytes out after a block in ``channel``: the rule's message, the end."""
        return self._chunk([{"index": channel.choice, "delta": {"content": message},
                             "finish_reason": "content_filter", "logprobs": None}]) + DONE


def _shift(hit: RuleHit, by: int) -> RuleHit:
    return RuleHit(hit.rule_id, hit.action, tuple((s + by, e + by) for s, e in hit.ranges),
                   hit.entities)


def _rank(verdict: ModerationVerdict) -> int:
    return 3 if verdict.error is not None else _VERDICT_RANK.get(verdict.outcome, 0)
