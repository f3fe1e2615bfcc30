"""The ``openai`` provider: one call to ``POST {base_url}/moderations`` per check.

Texts and images go in a single request so a check costs one round trip. Everything that can
go wrong on the way (timeout, refused connection, non-2xx status, a body that is not the
documented shape) becomes :class:`~guard.errors.ModerationUnavailable` with a short ``kind``;
neither the kind nor the detail ever carries input text, the response body or a key.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import ssl
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2

from guard.errors import ConfigError, ModerationUnavailable
from guard.moderation.base import CATEGORIES, ProviderScores

_SAFE_CODE = re.compile(r"[a-z0-9_.-]{1,64}")
POOL_LIMITS = httpx2.Limits(max_connections=400, max_keepalive_connections=200, keepalive_expiry=30)
"""Sized for one worker's streams: each holds an input check and up to four output windows.
httpx's default (100 connections, 20 kept alive) queued checks behind each other at 200
concurrent streams — and the queueing counted against the moderation timeout — while
reconnecting for almost every call."""


class OpenAIModeration:
    """Scores with OpenAI's moderation endpoint (``omni-moderation-latest`` by default).

    ``api_key`` is the default key; a per-call ``api_key`` (the key of the client Guard is
    serving) overrides it. With neither, the request goes without ``Authorization`` and
    OpenAI answers 401 (``http_401``); self-hosted compatible endpoints may not need a key.

    Pass ``client`` to use your pooled ``httpx2.AsyncClient``; it is then yours to close.
    Otherwise the provider uses its event loop's shared client (:data:`_loop_clients`),
    closed when that loop shuts down, or at once with :meth:`aclose` or ``async with``.

    Example::

        async with OpenAIModeration(base_url="https://api.openai.com/v1", api_key=key) as p:
            scores = await p.score(["some text"], ["https://example.com/cat.png"])
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        model: str = "omni-moderation-latest",
        timeout_s: float = 2.0,
        client: httpx2.AsyncClient | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"moderation base_url must be an http(s) URL such as "
                f"https://api.openai.com/v1, got {base_url!r}"
            )
        if not model:
            raise ConfigError("moderation model must be a non-empty model name")
        if not timeout_s > 0:
            raise ConfigError(f"moderation timeout_s must be > 0 seconds, got {timeout_s!r}")
        self.url = base_url.rstrip("/") + "/moderations"
        self.model = model
        self.timeout_s = float(timeout_s)
        self._api_key = api_key
        self._client = client
        if client is None:
            # Loading the CA certificates takes ~20-100 ms: do it once, here at start-up, not
            # in every loop's first check, where it counted against the moderation timeout.
            _tls_context()

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIModeration(url={self.url!r}, model={self.model!r})"

    async def __aenter__(self) -> OpenAIModeration:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the running loop's shared client (unless a client was passed in: yours).

        Another provider on this loop that checks afterwards opens a new one."""
        if self._client is not None:
            return
        held = _loop_clients.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[1].aclose()  # runs the closer's ``finally``: the client closes

    async def _http(self) -> httpx2.AsyncClient:
        return self._client if self._client is not None else await _loop_client()

    async def score(
        self,
        texts: Sequence[str],
        images: Sequence[str] = (),
        *,
        api_key: str | None = None,
    ) -> ProviderScores:
        key = api_key or self._api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {"model": self.model, "input": _request_input(texts, images)}
        try:
            http = await self._http()
            response = await http.post(
                self.url, json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx2.TimeoutException as exc:
            raise ModerationUnavailable("timeout", type(exc).__name__) from None
        except httpx2.TransportError as exc:
            # Refused, reset, TLS or proxy failure: the endpoint could not be reached.
            raise ModerationUnavailable("connection", type(exc).__name__) from None
        if not response.is_success:
            raise ModerationUnavailable(
                f"http_{response.status_code}", _error_code(response)
            ) from None
        try:
            payload = response.json()
        except ValueError:
            raise ModerationUnavailable("bad_response", "body is not JSON") from None
        return parse_response(payload, n_texts=len(texts), n_images=len(images))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings an ``httpx2.AsyncClient()`` would build for itself, built once."""
    return httpx2.create_ssl_context()


_loop_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[httpx2.AsyncClient, AsyncGenerator[None, None]]
] = weakref.WeakKeyDictionary()
"""One pooled client per event loop, shared by every provider that was not given one.

Pooled connections belong to the loop that opened them (a sync adapter may run one loop per
call), so each loop has its own. Shared, because a policy reload builds new providers while
calls under the old policy may still be checking: a client per provider would be left
open behind each reload, its connections collected unclosed."""


async def _loop_client() -> httpx2.AsyncClient:
    loop = asyncio.get_running_loop()
    held = _loop_clients.get(loop)
    if held is not None and not held[0].is_closed:
        return held[0]
    client = httpx2.AsyncClient(limits=POOL_LIMITS, trust_env=False, verify=_tls_context())
    closer = _close_at_loop_shutdown(client)
    await closer.__anext__()
    _loop_clients[loop] = (client, closer)  # holding the closer keeps it from finalising
    return client


async def _close_at_loop_shutdown(client: httpx2.AsyncClient) -> AsyncGenerator[None, None]:
    """Closes ``client`` when its event loop finalises async generators at shutdown.

    ``asyncio.run`` and ``asyncio.Runner`` call ``loop.shutdown_asyncgens()`` before closing
    the loop, which runs this ``finally`` while the loop can still close the sockets.
    """
    try:
        yield
    finally:
        await client.aclose()


def _request_input(texts: Sequence[str], images: Sequence[str]) -> list[Any]:
    """A list of strings for text only; multi-modal parts as soon as there is an image."""
    if not images:
        return list(texts)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text} for text in texts]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return parts


def _error_code(response: httpx2.Response) -> str:
    """OpenAI's machine-readable error code, if any; the message is never kept.

    The message can quote the request or part of the key ("Incorrect API key provided:
    sk-ab***yz"), so only a code that looks like an identifier is used.
    """
    try:
        error = response.json().get("error", {})
        code = error.get("code") or error.get("type")
    except (ValueError, AttributeError):
        return ""
    return code if isinstance(code, str) and _SAFE_CODE.fullmatch(code) else ""


def parse_response(payload: Any, *, n_texts: int, n_images: int) -> ProviderScores:
    """Fold a ``CreateModerationResponse`` into per-category maxima and unevaluated names.

    A list of strings yields one result per string; a multi-modal input may yield one
    result for all parts. ``category_applied_input_types`` says which input types a score
    covers: a category with an empty list was not evaluated at all; when images were sent,
    a category whose list lacks ``"image"`` was not evaluated for them. A category that is
    missing or ``null`` (older text models have no ``illicit``) is unevaluated too.
    """
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list) or not results:
        raise ModerationUnavailable("bad_response", "no results")
    if not n_images and len(results) != n_texts:
        raise ModerationUnavailable(
            "bad_response", f"{len(results)} results for {n_texts} inputs"
        )

    maxima: dict[str, float] = {}
    applied: dict[str, set[str]] = {}
    applied_known = True
    for result in results:
        scores = result.get("category_scores") if isinstance(result, dict) else None
        if not isinstance(scores, dict):
            raise ModerationUnavailable("bad_response", "result without category_scores")
        types = result.get("category_applied_input_types")
        if types is None:
            applied_known = False
        elif not isinstance(types, dict):
            raise ModerationUnavailable("bad_response", "category_applied_input_types")
        for category, value in scores.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ModerationUnavailable("bad_response", "non-numeric score")
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ModerationUnavailable("bad_response", "score outside [0, 1]")
            kinds = _applied_types(types, category) if isinstance(types, dict) else None
            if kinds is not None:
                applied.setdefault(category, set()).update(kinds)
                if not kinds:
                    continue  # scored but applied to no input: not an evaluation
            maxima[category] = max(maxima.get(category, 0.0), float(value))

    unevaluated = {c for c in CATEGORIES if c not in maxima}
    if n_images:
        names = set(CATEGORIES) | set(maxima)
        if applied_known:
            unevaluated |= {c for c in names if "image" not in applied.get(c, ())}
        else:
            unevaluated |= names  # nothing says the image was looked at
    return ProviderScores(scores=maxima, unevaluated=frozenset(unevaluated))


def _applied_types(types: Mapping[str, Any], category: str) -> set[str] | None:
    kinds = types.get(category)
    if kinds is None:
        return None
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise ModerationUnavailable("bad_response", "category_applied_input_types")
    return set(kinds)
