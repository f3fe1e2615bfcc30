"""What every OpenAI wire format shares: text slots, image inputs, content parts, rewriting.

Extraction returns *slots*: a text together with the path that leads to it, so a stage can
change the text and :func:`replace_texts` can put it back without touching anything else.
Text inside function-call ``arguments`` (JSON inside a string) is reached through the parsed
JSON; the string is written back as valid JSON. Unknown fields are never looked at.
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


@dataclass(frozen=True, slots=True)
class ImageInput:
    """One image the model is shown: a URL (http(s) or data URL) or an uploaded file's id."""

    param: str
    url: str | None = None
    file_id: str | None = None


def format_param(path: Sequence[PathPart]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True, slots=True)
class Extraction:
    texts: tuple[TextSlot, ...]
    image_inputs: tuple[ImageInput, ...] = ()
    """Images, kept in the body; the policy's ``images`` says what happens to them."""

    @property
    def images(self) -> tuple[str, ...]:
        """Image URLs (http(s) or data URLs), for moderation."""
        return tuple(i.url for i in self.image_inputs if i.url)


def content_slots(content: Any, where: tuple[PathPart, ...],
                  images: list[ImageInput]) -> Iterator[TextSlot]:
    """Text parts of a message's ``content`` (a string or a list of parts); images are
    collected into ``images``. Chat (``text``, ``image_url``) and Responses (``input_text``,
    ``output_text``, ``input_image``) part types are both understood."""
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
                images.append(ImageInput(format_param((*at, "image_url")), url=url))
        elif kind == "input_image":
            url, file_id = part.get("image_url"), part.get("file_id")
            images.append(ImageInput(
                format_param((*at, "image_url" if isinstance(url, str) else "file_id")),
                url=url if isinstance(url, str) else None,
                file_id=file_id if isinstance(file_id, str) else None))


def argument_slots(arguments: str, where: tuple[PathPart, ...]) -> Iterator[TextSlot]:
    """The strings inside function-call ``arguments`` (or the whole string if not JSON)."""
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
