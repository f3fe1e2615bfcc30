"""Chat Completions bodies: where the model reads text, and where it writes it.

Extraction returns *slots*: a text together with the path that leads to it, so a stage can
change the text and :func:`replace_texts` can put it back without touching anything else.
Text inside ``tool_calls[].function.arguments`` (JSON inside a string) is reached through the
parsed JSON; the string is written back as valid JSON. Unknown fields are never looked at.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard.errors import WireFormatError

PathPart = str | int


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One text the model reads or writes.

    ``path`` leads from the body to the string; for text inside JSON arguments, ``path``
    leads to the arguments string and ``json_path`` on from the parsed JSON.
    """

    path: tuple[PathPart, ...]
    text: str
    json_path: tuple[PathPart, ...] | None = None

    @property
    def param(self) -> str:
        """The slot's place in OpenAI's error style: ``messages[1].content``."""
        return format_param(self.path)


def format_param(path: Sequence[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True, slots=True)
class Extraction:
    texts: tuple[TextSlot, ...]
    images: tuple[str, ...]
    """Image URLs (http(s) or data URLs), kept in the body and handed to moderation."""


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
    images: list[str] = []
    for i, message in enumerate(messages):
        where: tuple[PathPart, ...] = ("messages", i)
        if not isinstance(message, Mapping):
            raise WireFormatError(f"{format_param(where)} must be an object.", format_param(where))
        if not isinstance(message.get("role"), str):
            raise WireFormatError(
                f"{format_param(where)}.role must be a string.", format_param((*where, "role"))
            )
        texts.extend(_content_slots(message.get("content"), (*where, "content"), images))
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


def _content_slots(content: Any, where: tuple[PathPart, ...], images: list[str]) -> Iterator[TextSlot]:
    if content is None:
        return
    if isinstance(content, str):
        yield TextSlot(where, content)
        return
    if not isinstance(content, list):
        raise WireFormatError(
            f"{format_param(where)} must be a string or an array of content parts.",
            format_param(where),
        )
    for j, part in enumerate(content):
        at = (*where, j)
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise WireFormatError(
                f"{format_param(at)} must be an object with a 'type'.", format_param(at)
            )
        kind = part["type"]
        if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
            yield TextSlot((*at, "text"), part["text"])
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            yield TextSlot((*at, "refusal"), part["refusal"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if isinstance(url, str):
                images.append(url)


def _tool_call_slots(message: Mapping[str, Any], where: tuple[PathPart, ...]) -> Iterator[TextSlot]:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for k, call in enumerate(calls):
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
                yield from _argument_slots(function["arguments"],
                                           (*where, "tool_calls", k, "function", "arguments"))
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping) and isinstance(legacy.get("arguments"), str):
        yield from _argument_slots(legacy["arguments"], (*where, "function_call", "arguments"))


def _argument_slots(arguments: str, where: tuple[PathPart, ...]) -> Iterator[TextSlot]:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        # Not JSON (models sometimes emit broken arguments): treat it as plain text.
        yield TextSlot(where, arguments)
        return
    for json_path, value in _json_strings(parsed, ()):
        yield TextSlot(where, value, json_path)


def _json_strings(value: Any, path: tuple[PathPart, ...]) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _json_strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, (*path, index))


def replace_texts(body: Mapping[str, Any], changes: Mapping[TextSlot, str]) -> dict[str, Any]:
    """A copy of ``body`` with each slot's text replaced; untouched when ``changes`` is empty."""
    result = copy.deepcopy(dict(body))
    by_arguments: dict[tuple[PathPart, ...], list[tuple[TextSlot, str]]] = {}
    for slot, text in changes.items():
        if slot.json_path is None:
            _set(result, slot.path, text)
        else:
            by_arguments.setdefault(slot.path, []).append((slot, text))
    for path, items in by_arguments.items():
        parsed = json.loads(_get(result, path))
        for slot, text in items:
            assert slot.json_path is not None
            if slot.json_path:
                _set(parsed, slot.json_path, text)
            else:
                parsed = text
        _set(result, path, json.dumps(parsed, ensure_ascii=False))
    return result


def _get(container: Any, path: Sequence[PathPart]) -> Any:
    for part in path:
        container = container[part]
    return container


def _set(container: Any, path: Sequence[PathPart], value: Any) -> None:
    _get(container, path[:-1])[path[-1]] = value
