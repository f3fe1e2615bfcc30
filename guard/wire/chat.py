"""Chat Completions bodies: where the model reads text, and where it writes it.

The shared pieces (slots, content parts, rewriting) live in :mod:`guard.wire.slots`; this
module knows the chat shapes: ``messages[]`` with string or part contents, assistant
``tool_calls[].function.arguments`` (and the legacy ``function_call``), and ``choices[]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from guard.errors import WireFormatError
from guard.wire.slots import (
    Extraction,
    ImageInput,
    PathPart,
    TextSlot,
    argument_slots,
    content_slots,
    format_param,
    replace_texts,
)

__all__ = ["Extraction", "TextSlot", "extract_request", "extract_response", "format_param",
           "replace_texts", "role_of", "withhold"]


def extract_request(body: Any) -> Extraction:
    """Every text a chat completion request shows the model, in reading order.

    Raises :class:`WireFormatError` for a body that is not a chat completion request.
    """
    if not isinstance(body, Mapping):
        raise WireFormatError("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireFormatError("'messages' must be a non-empty array.", param="messages")
    texts: list[TextSlot] = []
    images: list[ImageInput] = []
    for i, message in enumerate(messages):
        where: tuple[PathPart, ...] = ("messages", i)
        if not isinstance(message, Mapping):
            raise WireFormatError(f"{format_param(where)} must be an object.", format_param(where))
        if not isinstance(message.get("role"), str):
            raise WireFormatError(
                f"{format_param(where)}.role must be a string.", format_param((*where, "role"))
            )
        texts.extend(content_slots(message.get("content"), (*where, "content"), images))
        texts.extend(_tool_call_slots(message, where))
    return Extraction(tuple(texts), tuple(images))


def extract_response(body: Any) -> tuple[TextSlot, ...]:
    """Every text a chat completion response carries back to the client."""
    if not isinstance(body, Mapping) or not isinstance(body.get("choices"), list):
        raise WireFormatError("The upstream response is not a chat completion.", "choices")
    texts: list[TextSlot] = []
    for i, choice in enumerate(body["choices"]):
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            continue
        where: tuple[PathPart, ...] = ("choices", i, "message")
        for key in ("content", "refusal"):
            if isinstance(message.get(key), str):
                texts.append(TextSlot((*where, key), message[key]))
        texts.extend(_tool_call_slots(message, where))
    return tuple(texts)


def withhold(body: dict[str, Any], index: int, message: str) -> None:
    """Replace choice ``index`` of a (copied) response by ``message``, ``content_filter``."""
    choice = body["choices"][index]
    message_obj = choice.get("message") or {}
    message_obj = {k: v for k, v in message_obj.items()
                   if k not in ("tool_calls", "function_call", "refusal", "audio")}
    message_obj["content"] = message
    message_obj.setdefault("role", "assistant")
    choice["message"] = message_obj
    choice["finish_reason"] = "content_filter"


def role_of(body: Mapping[str, Any], slot: TextSlot) -> str:
    """The role of the message a request slot belongs to (``user``, ``tool``, ...)."""
    if slot.path[:1] == ("messages",) and isinstance(slot.path[1], int):
        role = body["messages"][slot.path[1]].get("role")
        if isinstance(role, str):
            return role
    return "user"


def _tool_call_slots(message: Mapping[str, Any], where: tuple[PathPart, ...]) -> Iterator[TextSlot]:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for k, call in enumerate(calls):
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
                yield from argument_slots(function["arguments"],
                                          (*where, "tool_calls", k, "function", "arguments"))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping) and isinstance(legacy.get("arguments"), str):
        yield from argument_slots(legacy["arguments"], (*where, "function_call", "arguments"))
