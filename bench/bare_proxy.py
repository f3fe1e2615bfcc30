#!/usr/bin/env python3
"""The baseline for bench/proxy.py: Guard's proxy with every check taken out.

The same server stack as `guard serve` — uvicorn with the same options
(``guard.proxy.SERVER_OPTIONS``), Guard's own ``Router`` and ``Forwarder`` (pooled httpx2
client, the same header handling and streaming) — but no ``GuardMiddleware``: no PII, no
moderation, no rules, no audit. Whatever `guard serve` costs on top of this is Guard.

    python bench/bare_proxy.py --port 9200 --upstream http://127.0.0.1:9100/v1

For benchmarks only: Guard itself never forwards a chat request unchecked.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn

from guard.asgi import Receive, Scope, Send
from guard.proxy import SERVER_OPTIONS, Router
from guard.upstream import Forwarder


class BareProxy:
    """``Router`` → ``Forwarder``, with a lifespan that closes the pooled client."""

    def __init__(self, upstream_url: str) -> None:
        self.forwarder = Forwarder(upstream_url)
        self.router = Router(self.forwarder, ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/healthz":  # for the harness only
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        if scope["type"] != "lifespan":
            await self.router(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.forwarder.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="OpenAI-compatible base URL (…/v1)")
    a = ap.parse_args()
    uvicorn.run(BareProxy(a.upstream), host="127.0.0.1", port=a.port, **SERVER_OPTIONS)


if __name__ == "__main__":
    main()
