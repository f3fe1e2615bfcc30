"""Request limits enforced before anything else reads a request: header size.

The body limit lives in :class:`~guard.asgi.GuardMiddleware` (it buffers the body) and the
text limit in the engine (it extracts the texts); this module bounds what an ASGI server
has already parsed, the headers, with an OpenAI-shaped 431.
"""

from __future__ import annotations

from guard.asgi import ASGIApp, Receive, Scope, Send, error_body, send_json

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
"""Names, values and their separators together; OpenAI SDK requests use well under 1 KiB."""


class HeaderLimit:
    """Refuse requests whose headers together exceed ``max_header_bytes`` (431)."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> None:
        if max_header_bytes <= 0:
            raise ValueError("max_header_bytes must be positive")
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
            if size > self.max_header_bytes:
                await send_json(send, 431, error_body(
                    f"The request headers are larger than the limit of {self.max_header_bytes} "
                    "bytes.", code="request_header_fields_too_large"))
                return
        await self.app(scope, receive, send)
