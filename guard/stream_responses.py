"""Guarding a streamed Responses API answer: the chat hold-back, over typed events.

:class:`ResponsesStreamGuard` is :class:`~guard.stream.StreamGuard` with another dialect:
the window, overlap, rule checks, redaction and placeholder restoring are the base class's;
this class only reads and writes Responses events. Text arrives as
``response.output_text.delta`` / ``response.refusal.delta`` (one channel per output item and
content part) and ``response.function_call_arguments.delta`` (one channel per output item,
restored JSON-escaped). Deltas are re-emitted as the checked text is released; the ``*.done``
events, ``response.output_item.done`` and the final ``response.completed`` carry only text
that was released (never the upstream's copy of it); events are renumbered
(``sequence_number``) because the released deltas are not the upstream's.

A block mid-stream ends the stream as OpenAI ends a filtered response: the rule's message as
a last text delta (or, inside function-call arguments, an incomplete message item in place
of the call), then ``response.incomplete`` with ``incomplete_details.reason =
"content_filter"``. Unknown event types pass through unless they carry text (``delta``,
``text``, ``arguments``, ``refusal``, ``part``, ``item``), which is dropped: never released
unchecked.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from guard.pricing import usage_of
from guard.stream import StreamGuard, _Channel
from guard.wire.responses import mark_incomplete, withheld_item
from guard.wire.sse import DONE, SSEEvent, format_event

if TYPE_CHECKING:
    from guard.call import Call

_DELTA_KIND = {"response.output_text.delta": "content", "response.refusal.delta": "refusal",
               "response.function_call_arguments.delta": "arguments"}
_DONE_KIND = {"response.output_text.done": ("content", "text"),
              "response.refusal.done": ("refusal", "refusal"),
              "response.function_call_arguments.done": ("arguments", "arguments")}
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_RESPONSE_STATE = ("response.created", "response.in_progress", "response.queued")
_TEXT_KEYS = ("delta", "text", "arguments", "refusal", "part", "item")

ChannelKey = tuple[int, str, int | None]


class ResponsesStreamGuard(StreamGuard):
    """Checks and restores one streamed Responses API answer; one instance per call."""

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._seq = 0
        self._response: dict[str, Any] = {}
        self._items: dict[int, dict[str, Any]] = {}
        self._released: dict[ChannelKey, str] = {}
        self._withheld: dict[int, str] = {}
        self._current: _Channel | None = None

    # -- events in -----------------------------------------------------------------------

    async def _event(self, event: SSEEvent) -> bytes:
        if event.data == "[DONE]":
            out = await self._release_all()
            self._saw_done = True
            if not self.stopped and not self._done_sent:
                out += DONE
                self._done_sent = True
            return out
        try:
            data = json.loads(event.data)
        except ValueError:
            return b""  # unreadable data is never passed on unchecked
        if not isinstance(data, dict):
            return b""
        kind = data.get("type") if isinstance(data.get("type"), str) else event.event
        if kind == "error" or (kind is None and "error" in data):
            self.call.status, self.call.truncated = "upstream_error", True
            self.call.error = "stream_error_event"
            return await self._release_all() + self._emit({**data, "type": "error"})
        if kind in _RESPONSE_STATE:
            self._remember(data.get("response"))
            return self._emit({**data, "response": self._response_view()})
        if kind in _DELTA_KIND:
            return await self._delta(data, _DELTA_KIND[kind])
        if kind in _DONE_KIND:
            return await self._text_done(data, *_DONE_KIND[kind])
        if kind == "response.output_item.added":
            return await self._item_added(data)
        if kind == "response.content_part.added":
            return await self._part_added(data)
        if kind == "response.content_part.done":
            index, part = _index(data, "output_index"), _index(data, "content_index")
            key = (index, _part_kind(data.get("part")), part)
            out = await self._release_key(key)
            if self.stopped:
                return out
            return out + self._emit({**data, "part": self._part_view(key, data.get("part"))})
        if kind == "response.output_item.done":
            return await self._item_done(data)
        if kind in _TERMINAL:
            return await self._terminal(data)
        if any(isinstance(data.get(k), str | dict | list) for k in _TEXT_KEYS):
            return b""  # an event type we do not know that carries text: not unchecked
        return self._emit(data)

    async def _delta(self, data: dict[str, Any], kind: str) -> bytes:
        index = _index(data, "output_index")
        part = None if kind == "arguments" else _index(data, "content_index")
        item = self._items.setdefault(index, {"type": "function_call" if kind == "arguments"
                                              else "message"})
        if isinstance(data.get("item_id"), str):
            item.setdefault("id", data["item_id"])
        text = data.get("delta")
        if not isinstance(text, str) or not text:
            return b""
        return await self._append(self._channel(index, kind, part), text)

    async def _text_done(self, data: dict[str, Any], kind: str, field: str) -> bytes:
        index = _index(data, "output_index")
        key = (index, kind, None if kind == "arguments" else _index(data, "content_index"))
        out = await self._release_key(key)
        if self.stopped:
            return out
        done = {**data, field: self._released.get(key, "")}
        if "logprobs" in done:
            done["logprobs"] = []  # they repeat the tokens themselves: unchecked text
        return out + self._emit(done)

    async def _item_added(self, data: dict[str, Any]) -> bytes:
        index = _index(data, "output_index")
        item = data.get("item")
        if not isinstance(item, dict):
            return b""
        self._items[index] = _blank(item)
        out = await self._absorb_item(index, item)
        if self.stopped:
            return out
        return out + self._emit({**data, "item": self._item_view(index)})

    async def _part_added(self, data: dict[str, Any]) -> bytes:
        index, part_index = _index(data, "output_index"), _index(data, "content_index")
        part = data.get("part")
        if not isinstance(part, dict):
            return b""
        item = self._items.setdefault(index, {"type": "message"})
        content = item.setdefault("content", [])
        while len(content) <= part_index:
            content.append({})
        content[part_index] = _blank_part(part)
        out = bytearray()
        kind = _part_kind(part)
        text = part.get("text" if kind == "content" else "refusal")
        if isinstance(text, str) and text:
            out += await self._append(self._channel(index, kind, part_index), text)
            if self.stopped:
                return bytes(out)
        key = (index, kind, part_index)
        return bytes(out) + self._emit({**data, "part": self._part_view(key, part)})

    async def _item_done(self, data: dict[str, Any]) -> bytes:
        index = _index(data, "output_index")
        item = data.get("item")
        out = bytearray()
        if isinstance(item, dict):
            blank = _blank(item)
            known = self._items.get(index, {})
            if "content" in known and "content" in blank:
                # Keep parts we announced; take the upstream's statuses and ids.
                blank["content"] = [known["content"][j] if j < len(known["content"]) else p
                                    for j, p in enumerate(blank["content"])]
            self._items[index] = blank
            out += await self._absorb_item(index, item, only_unseen=True)
        for channel in self._channels_of_item(index):
            out += await self._release(channel, final=True)
            channel.closed = True
            if self.stopped:
                return bytes(out)
        return bytes(out) + self._emit({**data, "item": self._item_view(index)})

    async def _terminal(self, data: dict[str, Any]) -> bytes:
        response = data.get("response")
        out = bytearray()
        if isinstance(response, dict):
            for index, item in enumerate(response.get("output") or []):
                if isinstance(item, dict):
                    if index not in self._items:
                        self._items[index] = _blank(item)
                    out += await self._absorb_item(index, item, only_unseen=True)
                    if self.stopped:
                        return bytes(out)
            self._remember(response)
            if response.get("usage"):
                self.call.usage = usage_of(response) or self.call.usage
        out += await self._release_all()
        if self.stopped:
            return bytes(out)
        self._saw_done = True
        self._done_sent = True  # a Responses stream ends with its terminal event, no [DONE]
        return bytes(out) + self._emit({**data, "response": self._response_view()})

    async def _absorb_item(self, index: int, item: dict[str, Any], *,
                           only_unseen: bool = False) -> bytes:
        """Feed an item's own texts into its channels (upstreams that send whole items)."""
        out = bytearray()
        for key, text in _item_texts(index, item):
            if not text or (only_unseen and (key in self._channels or key in self._released)):
                continue
            out += await self._append(self._channel(*key), text)
            if self.stopped:
                break
        return bytes(out)

    def _remember(self, response: Any) -> None:
        if not isinstance(response, dict):
            return
        self._response = {k: v for k, v in response.items() if k != "output"}
        if isinstance(response.get("model"), str) and self.call.model is None:
            self.call.model = response["model"]

    # -- releasing -------------------------------------------------------------------------

    async def _release(self, channel: _Channel, *, final: bool) -> bytes:
        self._current = channel
        return await super()._release(channel, final=final)

    async def _release_key(self, key: ChannelKey) -> bytes:
        channel = self._channels.get(key)
        if channel is None or channel.closed:
            return b""
        out = await self._release(channel, final=True)
        channel.closed = True
        return out

    async def _release_all(self) -> bytes:
        out = bytearray()
        for channel in list(self._channels.values()):
            out += await self._release(channel, final=True)
            if self.stopped:
                break
        return bytes(out)

    def _channels_of_item(self, index: int) -> list[_Channel]:
        return [c for c in self._channels.values() if c.choice == index and not c.closed]

    # -- events out ------------------------------------------------------------------------

    def _emit(self, data: dict[str, Any]) -> bytes:
        data = {**data, "sequence_number": self._seq}
        self._seq += 1
        return format_event(json.dumps(data, ensure_ascii=False), event=str(data.get("type")))

    def error_event(self, message: str, code: str = "guard.upstream_stream_error") -> bytes:
        """A Responses ``error`` event that the OpenAI SDKs also raise as ``APIError``."""
        error = {"message": message, "type": "server_error", "param": None, "code": code}
        self._done_sent = True  # the error ends the stream; a Responses stream has no [DONE]
        return self._emit({"type": "error", "code": code, "message": message, "param": None,
                           "error": error})

    def _text_chunk(self, channel: _Channel, text: str) -> bytes:
        key = (channel.choice, channel.kind, channel.tool_index)
        self._released[key] = self._released.get(key, "") + text
        item_id = self._items.get(channel.choice, {}).get("id")
        if channel.kind == "arguments":
            return self._emit({"type": "response.function_call_arguments.delta",
                               "item_id": item_id, "output_index": channel.choice,
                               "delta": text})
        event: dict[str, Any] = {
            "type": "response.output_text.delta" if channel.kind == "content"
            else "response.refusal.delta",
            "item_id": item_id, "output_index": channel.choice,
            "content_index": channel.tool_index or 0, "delta": text}
        if channel.kind == "content":
            event["logprobs"] = []
        return self._emit(event)

    def _block_chunk(self, choice: int, message: str) -> bytes:
        self._record()
        self._done_sent = True
        channel = self._current
        out = b""
        if channel is not None and channel.kind != "arguments" and channel.choice == choice:
            out = self._text_chunk(channel, message)
        else:
            self._withheld[choice] = message
        response = self._response_view()
        mark_incomplete(response)
        for item in response["output"]:
            if item.get("status") != "completed":
                item["status"] = "incomplete"
        return out + self._emit({"type": "response.incomplete", "response": response})

    def _response_view(self) -> dict[str, Any]:
        return {**copy.deepcopy(self._response),
                "output": [self._item_view(i) for i in sorted(self._items)]}

    def _item_view(self, index: int) -> dict[str, Any]:
        item = copy.deepcopy(self._items.get(index, {}))
        if index in self._withheld:
            return withheld_item(item, self._withheld[index])
        if item.get("type") == "function_call":
            item["arguments"] = self._released.get((index, "arguments", None), "")
        elif item.get("type") == "message":
            content = item.setdefault("content", [])
            for (i, kind, part), _ in self._released.items():
                if i == index and kind != "arguments" and part is not None:
                    while len(content) <= part:
                        content.append({})
                    content[part] = self._part_view((i, kind, part), content[part])
        return item

    def _part_view(self, key: ChannelKey, part: Any) -> dict[str, Any]:
        view = _blank_part(part) if isinstance(part, dict) else {}
        kind = key[1]
        view.setdefault("type", "output_text" if kind == "content" else "refusal")
        if kind == "content":
            view.setdefault("annotations", [])
        view["text" if kind == "content" else "refusal"] = self._released.get(key, "")
        return view


def _index(data: dict[str, Any], name: str) -> int:
    value = data.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _part_kind(part: Any) -> str:
    return "refusal" if isinstance(part, dict) and part.get("type") == "refusal" else "content"


def _blank_part(part: dict[str, Any]) -> dict[str, Any]:
    return {k: ("" if k in ("text", "refusal") and isinstance(v, str) else
                [] if k == "logprobs" else copy.deepcopy(v))
            for k, v in part.items()}


def _blank(item: dict[str, Any]) -> dict[str, Any]:
    """An output item without its texts (they go out only as released)."""
    blank = {k: copy.deepcopy(v) for k, v in item.items() if k != "content"}
    if isinstance(item.get("arguments"), str):
        blank["arguments"] = ""
    if isinstance(item.get("content"), list):
        blank["content"] = [_blank_part(p) if isinstance(p, dict) else {} for p in item["content"]]
    return blank


def _item_texts(index: int, item: dict[str, Any]) -> list[tuple[ChannelKey, str]]:
    if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        return [((index, "arguments", None), item["arguments"])]
    texts: list[tuple[ChannelKey, str]] = []
    for j, part in enumerate(item.get("content") or []):
        if isinstance(part, dict):
            kind = _part_kind(part)
            text = part.get("text" if kind == "content" else "refusal")
            if isinstance(text, str):
                texts.append(((index, kind, j), text))
    return texts
