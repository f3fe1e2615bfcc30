"""Bounded, content-free values for metric labels and span attributes.

Everything that becomes a label goes through here first. A request path or a model name
comes from the client, so it is mapped onto a short fixed vocabulary; a principal becomes
a label only when asked for, and only as a short hash.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

ROUTES: tuple[tuple[str, str], ...] = (
    ("/chat/completions", "/v1/chat/completions"),
    ("/responses", "/v1/responses"),
    ("/embeddings", "/v1/embeddings"),
    ("/completions", "/v1/completions"),
    ("/moderations", "/v1/moderations"),
    ("/files", "/v1/files"),
    ("/models", "/v1/models"),
)
"""Path endings Guard knows, and the one label each becomes (any prefix, any deployment)."""

OTHER = "other"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def route_label(path: str | None) -> str:
    """``/openai/deployments/x/chat/completions`` → ``/v1/chat/completions``; unknown → other.

    >>> route_label("/v1/chat/completions"), route_label("/jane@example.com/x")
    ('/v1/chat/completions', 'other')
    """
    if not path:
        return OTHER
    for ending, label in ROUTES:
        if path.endswith(ending):
            return label
    return OTHER


def model_label(model: str | None, known: Iterable[str]) -> str:
    """The model name when it is one of ``known`` (or a dated version of one), else other.

    A client may send any string as ``model``; only names configured for pricing (or listed
    with ``GUARD_METRICS_MODELS``) become labels, so the series stay few.

    >>> model_label("gpt-4o-mini-2024-07-18", ["gpt-4o-mini"]), model_label("x y", ["gpt-4o"])
    ('gpt-4o-mini', 'other')
    """
    if not model or not _MODEL.fullmatch(model):
        return OTHER
    names = sorted(known, key=len, reverse=True)
    for name in names:
        if model == name or model.startswith(name + "-"):
            return name
    return OTHER


def principal_label(principal: str | None, key: bytes) -> str:
    """A short keyed hash of the audit principal (itself already a hash or a user id)."""
    if not principal:
        return "anonymous"
    return "p:" + hashlib.blake2b(principal.encode(), key=key[:64], digest_size=6).hexdigest()
