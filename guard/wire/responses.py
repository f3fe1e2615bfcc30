"""Responses API bodies (``POST /v1/responses``): where the model reads and writes text.

The model reads ``instructions``, ``input`` (a string, or a list of items: messages whose
``content`` is a string or ``input_text`` / ``input_image`` / ``output_text`` parts, earlier
``function_call`` items with JSON ``arguments``, ``function_call_output`` items) and the
string ``prompt.variables`` of a stored prompt. It writes ``output[]`` items: messages with
``output_text`` / ``refusal`` parts, and ``function_call`` items with JSON ``arguments``.
Other item types (reasoning, item references, ...) carry no text Guard could check and are
left as they are.
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
)

INCOMPLETE_REASON = "content_filter"


def extract_request(body: Any) -> Extraction:
    """Every text (and image) a Responses API request shows the model, in reading order.

    Raises :class:`WireFormatError` for a body that is not a Responses API request.
    """
    if not isinstance(body, Mapping):
        raise WireFormatError("The request body must be a JSON object.")
    if "messages" in body:
        # Passed on, a Chat Completions field would reach the upstream unchecked.
        raise WireFormatError("'messages' is a Chat Completions field; the Responses API takes "
                              "'input' (a string or an array of input items).", "messages")
    texts: list[TextSlot] = []
    images: list[ImageInput] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(TextSlot(("instructions",), instructions))
    elif instructions is not None:
        raise WireFormatError("'instructions' must be a string.", "instructions")
    texts.extend(_prompt_variable_slots(body.get("prompt"), images))
    data = body.get("input")
    if isinstance(data, str):
        texts.append(TextSlot(("input",), data))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            texts.extend(_input_item_slots(item, ("input", i), images))
    elif data is not None:
        raise WireFormatError("'input' must be a string or an array of input items.", "input")
    return Extraction(tuple(texts), tuple(images))


def _input_item_slots(item: Any, where: tuple[PathPart, ...],
                      images: list[ImageInput]) -> Iterator[TextSlot]:
    if not isinstance(item, Mapping):
        raise WireFormatError(f"{format_param(where)} must be an object.", format_param(where))
    kind = item.get("type", "message")
    if kind == "message":
        if not isinstance(item.get("role"), str):
            raise WireFormatError(f"{format_param(where)}.role must be a string.",
                                  format_param((*where, "role")))
        yield from content_slots(item.get("content"), (*where, "content"), images)
    elif kind == "function_call" and isinstance(item.get("arguments"), str):
        yield from argument_slots(item["arguments"], (*where, "arguments"))
    elif kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        if isinstance(output, str):
            yield TextSlot((*where, "output"), output)
        elif isinstance(output, list):
            yield from content_slots(output, (*where, "output"), images)


def _prompt_variable_slots(prompt: Any, images: list[ImageInput]) -> Iterator[TextSlot]:
    variables = prompt.get("variables") if isinstance(prompt, Mapping) else None
    if not isinstance(variables, Mapping):
        return
    for name, value in variables.items():
        where: tuple[PathPart, ...] = ("prompt", "variables", name)
        if isinstance(value, str):
            yield TextSlot(where, value)
        elif isinstance(value, Mapping):
            # One input part (input_text, input_image) given as the variable's value.
            found = list(content_slots([value], where, images))
            yield from (TextSlot(s.path[:-2] + s.path[-1:], s.text) for s in found)


def extract_response(body: Any) -> tuple[TextSlot, ...]:
    """Every text a Responses API response carries back: ``output[i]`` message parts and
    function-call arguments (``slot.path[1]`` is the output item's index)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("output"), list):
        raise WireFormatError("The upstream response is not a Responses API response.", "output")
    texts: list[TextSlot] = []
    for i, item in enumerate(body["output"]):
        texts.extend(output_item_slots(item, ("output", i)))
    return tuple(texts)


def output_item_slots(item: Any, where: tuple[PathPart, ...]) -> Iterator[TextSlot]:
    """The texts of one output item (also used for the items of streamed events)."""
    if not isinstance(item, Mapping):
        return
    kind = item.get("type")
    if kind == "message" and isinstance(item.get("content"), list):
        for j, part in enumerate(item["content"]):
            if not isinstance(part, Mapping):
                continue
            for key in ("text", "refusal"):
                if isinstance(part.get(key), str):
                    yield TextSlot((*where, "content", j, key), part[key])
    elif kind == "function_call" and isinstance(item.get("arguments"), str):
        yield from argument_slots(item["arguments"], (*where, "arguments"))


def withheld_item(item: Mapping[str, Any], message: str) -> dict[str, Any]:
    """The output item that replaces a blocked one: an incomplete message saying why."""
    return {"id": item.get("id") or "msg_guard_withheld", "type": "message",
            "status": "incomplete", "role": "assistant",
            "content": [{"type": "output_text", "text": message, "annotations": []}]}


def mark_incomplete(response: dict[str, Any]) -> None:
    """Mark a (copied) response object as cut short by Guard, as OpenAI marks a filter."""
    response["status"] = "incomplete"
    response["incomplete_details"] = {"reason": INCOMPLETE_REASON}


def withhold(body: dict[str, Any], index: int, message: str) -> None:
    """Replace output item ``index`` of a (copied) response by ``message``; mark it incomplete."""
    body["output"][index] = withheld_item(body["output"][index], message)
    mark_incomplete(body)


def role_of(body: Mapping[str, Any], slot: TextSlot) -> str:
    """Who wrote a request slot: the message's role, ``tool`` for tool output, ``system``
    for ``instructions``, ``user`` for prompt variables and a plain string ``input``."""
    head = slot.path[0]
    if head == "instructions":
        return "system"
    if head == "input" and len(slot.path) > 1 and isinstance(slot.path[1], int):
        item = body["input"][slot.path[1]]
        kind = item.get("type", "message")
        if kind == "message" and isinstance(item.get("role"), str):
            return str(item["role"])
        if kind == "function_call":
            return "assistant"
        return "tool"
    return "user"
