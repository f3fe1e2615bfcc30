"""The OpenAI wire formats Guard understands, and which route speaks which.

One :class:`WireFormat` per API. The engine picks one per call — from the route
(:func:`api_for_route`) or by name — so every adapter, and a batch file line with ``url``
and ``body``, is checked the same way::

    api = api_for_route("/v1/responses")          # "responses"
    extraction = wire_format(api).extract_request(body)

======================  ==============  ===============================================
route (suffix)          api             output checked
======================  ==============  ===============================================
``/chat/completions``   ``chat``        choices' content, refusals, tool-call arguments
``/responses``          ``responses``   output messages and function-call arguments
``/embeddings``         ``embeddings``  nothing (vectors carry no text)
======================  ==============  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from guard.wire import chat, embeddings, responses
from guard.wire.slots import Extraction, TextSlot

__all__ = ["API_ROUTES", "WireFormat", "api_for_route", "wire_format"]


@dataclass(frozen=True)
class WireFormat:
    """How one API's bodies are read and written."""

    api: str
    route: str
    """The canonical path (``/v1/chat/completions``)."""
    extract_request: Callable[[Any], Extraction]
    role_of: Callable[[Mapping[str, Any], TextSlot], str]
    extract_response: Callable[[Any], tuple[TextSlot, ...]] | None = None
    """``None``: the answer has no text to check (embeddings)."""
    withhold: Callable[[dict[str, Any], int, str], None] | None = None
    """Replaces output unit ``slot.path[1]`` of a copied answer by a block message."""
    moderated: bool = True
    """Whether input rules and moderation look at the request (not for embeddings)."""


FORMATS: Mapping[str, WireFormat] = {
    "chat": WireFormat("chat", "/v1/chat/completions", chat.extract_request, chat.role_of,
                       chat.extract_response, chat.withhold),
    "responses": WireFormat("responses", "/v1/responses", responses.extract_request,
                            responses.role_of, responses.extract_response, responses.withhold),
    "embeddings": WireFormat("embeddings", "/v1/embeddings", embeddings.extract_request,
                             embeddings.role_of, moderated=False),
}

API_ROUTES: Mapping[str, str] = {f.route: f.api for f in FORMATS.values()}
"""Canonical route → api: ``{"/v1/chat/completions": "chat", ...}``."""


def wire_format(api: str) -> WireFormat:
    """The format called ``api``; ``ValueError`` naming the known ones otherwise."""
    try:
        return FORMATS[api]
    except KeyError:
        raise ValueError(f"unknown api {api!r}; known: {', '.join(FORMATS)}") from None


def api_for_route(path: str) -> str | None:
    """The api a request path speaks, by its last segments (``/v1/responses`` → ``responses``,
    ``/openai/deployments/x/chat/completions`` → ``chat``); ``None`` when none matches."""
    path = path.split("?", 1)[0].rstrip("/")
    for route, api in API_ROUTES.items():
        if path.endswith(route.removeprefix("/v1")):
            return api
    return None
