"""Which SDK requests go through the engine, and what they tell it (route, key, base URL).

The route list is the proxy's and the middleware's (:data:`guard.asgi.DEFAULT_ROUTES`), so the
three adapters guard the same endpoints (chat completions, responses, embeddings); the
engine picks the wire format from the path, so a new format added there is guarded here too.

>>> import httpx2
>>> routes = Routes()
>>> request = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
>>> routes.match(request)
'*/chat/completions'
>>> routes.base_url(request, "*/chat/completions")
'https://api.openai.com/v1'
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import httpx2

from guard.asgi import DEFAULT_ROUTES


@dataclass(frozen=True)
class Routes:
    """Glob patterns over the URL path; only ``POST`` requests to them are guarded."""

    patterns: tuple[str, ...] = tuple(DEFAULT_ROUTES)

    def match(self, request: httpx2.Request) -> str | None:
        """The pattern ``request`` matches, or ``None`` when it passes through untouched."""
        if request.method != "POST":
            return None
        path = request.url.path
        return next((p for p in self.patterns if fnmatch.fnmatchcase(path, p)), None)

    @staticmethod
    def base_url(request: httpx2.Request, pattern: str) -> str:
        """The API base the request was made against (``https://host/v1``).

        Taken from the request, not from the client, so a client copied with
        ``with_options(base_url=...)`` (which shares its HTTP client) is still right.
        """
        path = request.url.path
        suffix = pattern[pattern.rfind("*") + 1:]
        if suffix and path.endswith(suffix):
            prefix = path[: len(path) - len(suffix)]
        else:
            prefix = path.rsplit("/", 1)[0]
        url = request.url
        host = f"[{url.host}]" if ":" in url.host else url.host
        port = f":{url.port}" if url.port is not None else ""
        return f"{url.scheme}://{host}{port}{prefix}".rstrip("/")


def api_key_of(headers: httpx2.Headers) -> str | None:
    """The key the client authenticates with (``Authorization: Bearer`` or Azure's ``api-key``)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("api-key", "").strip() or None
