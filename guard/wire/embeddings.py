"""Embeddings bodies (``POST /v1/embeddings``): the texts that become vectors.

``input`` is a string or a list of strings; both are checked for personal data, because PII
that reaches a vector store is a leak that outlives the request. ``input`` given as token
ids (a list of integers, or a list of such lists) cannot be read without the model's
tokenizer, so it is refused with :class:`UnscannableInput` rather than passed on unchecked.
The answer (vectors) carries no text: there is nothing to check or restore in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guard.errors import WireFormatError
from guard.wire.slots import Extraction, TextSlot

UNSCANNABLE_CODE = "guard.unscannable_input"


class UnscannableInput(WireFormatError):
    """A well-formed input Guard cannot check (token ids): refused, never passed unchecked."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message, param, code=UNSCANNABLE_CODE)


def extract_request(body: Any) -> Extraction:
    """The texts of an embeddings request, in order (``input`` or ``input[i]``)."""
    if not isinstance(body, Mapping):
        raise WireFormatError("The request body must be a JSON object.")
    data = body.get("input")
    if isinstance(data, str):
        return Extraction((TextSlot(("input",), data),))
    if not isinstance(data, list) or not data:
        raise WireFormatError("'input' must be a string or a non-empty array of strings.",
                              "input")
    if all(isinstance(x, str) for x in data):
        return Extraction(tuple(TextSlot(("input", i), x) for i, x in enumerate(data)))
    if all(_is_tokens(x) for x in data) or _is_tokens(data):
        raise UnscannableInput(
            "'input' is given as token ids, which Guard cannot check for personal data. "
            "Send the text instead (a string or an array of strings).", "input")
    raise WireFormatError("'input' must be a string, an array of strings, or token ids; "
                          "do not mix them.", "input")


def _is_tokens(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(t, int) and not isinstance(t, bool) for t in value))


def role_of(body: Mapping[str, Any], slot: TextSlot) -> str:
    return "user"
