"""Guarding a streamed Responses API answer: the chat hold-back, over typed events.

:class:`ResponsesStreamGuard` is :class:`~guard.stream.StreamGuard` with another dialect:
the windows (analysed concurrently with receiving, decided and released in order), overlap,
rule checks, redaction, placeholder restoring and back-pressure are the base class's; this
class only reads and writes Responses events. Text arrives as
``response.output_text.delta`` / ``response.refusal.delta`` (one channel per output item and
content part) and ``response.function_call_arguments.delta`` (one channel per output item,
restored JSON-escaped). Deltas are re-emitted as the checked text is released; the ``*.done``
events, ``response.output_item.done`` and the final ``response.completed`` carry only text
that was released (never the upstream's copy of it). So every event this class writes is
built in its turn, once everything queued before it is decided: its view of the response is
then exactly what the client was given, and events are renumbered (``sequence_number``) in
the order they go out, because the released deltas are not the upstream's.

A block mid-stream ends the stream as OpenAI ends a filtered response: the rule's message as
a last text delta (or, inside function-call arguments, an incomplete message item in place
of the call), then ``response.incomplete`` with ``incomplete_details.reason =
"content_filter"``. A stream that breaks off (or that Guard cannot read) ends with an
``error`` event; a Responses stream has no ``[DONE]``. Unknown event types pass through
unless they carry text (``delta``, ``text``, ``arguments``, ``refusal``, ``part``,
``item``), which is dropped: never released unchecked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.pricing import usage_of
from guard.stream import StreamGuard, _Channel
from guard.wire.responses import mark_incomplete, withheld_item
from guard.wire.sse import SSEEvent, format_event

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

    _TERMINATOR = b""  # a Responses stream ends with its terminal or error event

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        # Reading side (as events arrive):
        self._seen: set[int] = set()
        """Output items the upstream has announced."""
        self._item_ids: dict[int, str] = {}
        # Writing side (changed only by events built in their turn, in output order):
        self._seq = 0
        self._response: dict[str, Any] = {}
        self._output: dict[int, dict[str, Any]] = {}
        """Output items as the client knows them, without their texts."""
        self._released: dict[ChannelKey, str] = {}
        self._withheld: dict[int, str] = {}

    # -- events in (synchronous: text goes into channels, the events out are queued) ------

    def _send(self, build: Callable[[], bytes]) -> None:
        self._send_in_turn(build)

    def _is_error(self, event: SSEEvent, data: dict[str, Any]) -> bool:
        kind = _kind(event, data)
        return kind == "error" or (kind is None and "error" in data)

    def _error_out(self, event: SSEEvent, data: dict[str, Any]) -> bytes:
        return self._emit({**data, "type": "error"})

    def _data(self, event: SSEEvent, data: dict[str, Any]) -> None:
        kind = _kind(event, data)
        if kind in _RESPONSE_STATE:
            self._response_state(data)
        elif kind in _DELTA_KIND:
            self._delta(data, _DELTA_KIND[kind])
        elif kind in _DONE_KIND:
            self._text_done(data, *_DONE_KIND[kind])
        elif kind == "response.output_item.added":
            self._item_added(data)
        elif kind == "response.content_part.added":
            self._part_added(data)
        elif kind == "response.content_part.done":
            self._part_done(data)
        elif kind == "response.output_item.done":
            self._item_done(data)
        elif kind in _TERMINAL:
            self._terminal(data)
        elif not any(isinstance(data.get(k), str | dict | list) for k in _TEXT_KEYS):
            self._send(lambda: self._emit(data))
        # else: an event type we do not know that carries text: never released unchecked

    def _response_state(self, data: dict[str, Any]) -> None:
        response = data.get("response")
        self._note_model(response)

        def build() -> bytes:
            self._remember(response)
            return self._emit({**data, "response": self._response_view()})
        self._send(build)

    def _delta(self, data: dict[str, Any], kind: str) -> None:
        index = _index(data, "output_index")
        part = None if kind == "arguments" else _index(data, "content_index")
        if isinstance(data.get("item_id"), str):
            self._item_ids.setdefault(index, data["item_id"])
        if index not in self._seen:  # deltas of an item never announced
            self._seen.add(index)
            self._announce(index, {"type": "function_call" if kind == "arguments" else "message",
                                   **({"id": data["item_id"]} if isinstance(data.get("item_id"), str)
                                      else {})})
        text = data.get("delta")
        if isinstance(text, str) and text:
            self._append(index, kind, part, text)

    def _text_done(self, data: dict[str, Any], kind: str, field: str) -> None:
        index = _index(data, "output_index")
        key = (index, kind, None if kind == "arguments" else _index(data, "content_index"))
        self._final(key)

        def build() -> bytes:
            done = {**data, field: self._released.get(key, "")}
            if "logprobs" in done:
                done["logprobs"] = []  # they repeat the tokens themselves: unchecked text
            return self._emit(done)
        self._send(build)

    def _item_added(self, data: dict[str, Any]) -> None:
        index = _index(data, "output_index")
        item = data.get("item")
        if not isinstance(item, dict):
            return
        self._seen.add(index)
        if isinstance(item.get("id"), str):
            self._item_ids[index] = item["id"]
        self._absorb_item(index, item)
        blank = _blank(item)

        def build() -> bytes:
            self._output[index] = blank
            return self._emit({**data, "item": self._item_view(index)})
        self._send(build)

    def _part_added(self, data: dict[str, Any]) -> None:
        index, part_index = _index(data, "output_index"), _index(data, "content_index")
        part = data.get("part")
        if not isinstance(part, dict):
            return
        self._seen.add(index)
        kind = _part_kind(part)
        key = (index, kind, part_index)
        text = part.get("text" if kind == "content" else "refusal")
        if isinstance(text, str) and text:
            self._append(*key, text)
        blank = _blank_part(part)

        def build() -> bytes:
            content = self._output.setdefault(index, {"type": "message"}).setdefault("content", [])
            while len(content) <= part_index:
                content.append({})
            content[part_index] = blank
            return self._emit({**data, "part": self._part_view(key, part)})
        self._send(build)

    def _part_done(self, data: dict[str, Any]) -> None:
        index, part_index = _index(data, "output_index"), _index(data, "content_index")
        key = (index, _part_kind(data.get("part")), part_index)
        self._final(key)
        self._send(lambda: self._emit({**data, "part": self._part_view(key, data.get("part"))}))

    def _item_done(self, data: dict[str, Any]) -> None:
        index = _index(data, "output_index")
        item = data.get("item")
        blank: dict[str, Any] | None = None
        if isinstance(item, dict):
            self._seen.add(index)
            self._absorb_item(index, item, only_unseen=True)
            blank = _blank(item)
        self._finals([c for c in self._channels.values() if c.choice == index])

        def build() -> bytes:
            if blank is not None:
                known = self._output.get(index, {})
                if "content" in known and "content" in blank:
                    # Keep parts we announced; take the upstream's statuses and ids.
                    blank["content"] = [known["content"][j] if j < len(known["content"]) else p
                                        for j, p in enumerate(blank["content"])]
                self._output[index] = blank
            return self._emit({**data, "item": self._item_view(index)})
        self._send(build)

    def _terminal(self, data: dict[str, Any]) -> None:
        response = data.get("response")
        if isinstance(response, dict):
            for index, item in enumerate(response.get("output") or []):
                if isinstance(item, dict):
                    self._absorb_item(index, item, only_unseen=True)
            self._note_model(response)
            if response.get("usage"):
                self.call.usage = usage_of(response) or self.call.usage
        self._finals(list(self._channels.values()))
        self._saw_done = True  # the end: nothing after it reaches the client

        def build() -> bytes:
            if isinstance(response, dict):
                for index, item in enumerate(response.get("output") or []):
                    if isinstance(item, dict) and index not in self._output:
                        self._output[index] = _blank(item)
                self._remember(response)
            return self._emit({**data, "response": self._response_view()})
        self._send(build)

    def _append(self, index: int, kind: str, part: int | None, text: str) -> None:
        channel = self._channel(index, kind, part)
        if not channel.closed:  # text for a part already ended is never released
            channel.pending += text

    def _final(self, key: ChannelKey) -> None:
        channel = self._channels.get(key)
        if channel is not None:
            self._finals([channel])

    def _absorb_item(self, index: int, item: dict[str, Any], *,
                     only_unseen: bool = False) -> None:
        """Feed an item's own texts into its channels (upstreams that send whole items)."""
        for key, text in _item_texts(index, item):
            if text and not (only_unseen and key in self._channels):
                self._append(*key, text)

    def _announce(self, index: int, item: dict[str, Any]) -> None:
        def build() -> bytes:
            self._output.setdefault(index, item)
            return b""
        self._send(build)

    def _note_model(self, response: Any) -> None:
        if isinstance(response, dict) and isinstance(response.get("model"), str) \
                and self.call.model is None:
            self.call.model = response["model"]

    def _remember(self, response: Any) -> None:
        if isinstance(response, dict):
            self._response = {k: v for k, v in response.items() if k != "output"}

    # -- events out (built in their turn: after everything before them is decided) -------

    def _emit(self, data: dict[str, Any]) -> bytes:
        data = {**data, "sequence_number": self._seq}
        self._seq += 1
        return format_event(json.dumps(data, ensure_ascii=False), event=str(data.get("type")))

    def error_event(self, message: str, code: str = "guard.upstream_stream_error") -> bytes:
        """A Responses ``error`` event that the OpenAI SDKs also raise as ``APIError``."""
        error = {"message": message, "type": "server_error", "param": None, "code": code}
        return self._emit({"type": "error", "code": code, "message": message, "param": None,
                           "error": error})

    def _text_chunk(self, channel: _Channel, text: str) -> bytes:
        key = (channel.choice, channel.kind, channel.tool_index)
        self._released[key] = self._released.get(key, "") + text
        item_id = self._output.get(channel.choice, {}).get("id") or self._item_ids.get(
            channel.choice)
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

    def _block_chunk(self, channel: _Channel, message: str) -> bytes:
        out = b""
        if channel.kind != "arguments":
            out = self._text_chunk(channel, message)
        else:
            self._withheld[channel.choice] = message
        response = self._response_view()
        mark_incomplete(response)
        for item in response["output"]:
            if item.get("status") != "completed":
                item["status"] = "incomplete"
        return out + self._emit({"type": "response.incomplete", "response": response})

    def _response_view(self) -> dict[str, Any]:
        return {**copy.deepcopy(self._response),
                "output": [self._item_view(i) for i in sorted(self._output)]}

    def _item_view(self, index: int) -> dict[str, Any]:
        item = copy.deepcopy(self._output.get(index, {}))
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


def _kind(event: SSEEvent, data: dict[str, Any]) -> str | None:
    kind = data.get("type")
    return kind if isinstance(kind, str) else event.event


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
