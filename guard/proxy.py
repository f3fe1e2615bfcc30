"""The OpenAI-compatible proxy: client-key check → GuardMiddleware → routes → Forwarder.

Point any OpenAI SDK at ``http://host:port/v1``. Guarded routes go through the engine;
``GET /v1/models`` passes through; every other route is refused with 404 unless it is listed
as pass-through in configuration — there is no silent unguarded path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx2

from guard.asgi import (
    DEFAULT_MAX_BODY_BYTES,
    ASGIApp,
    GuardMiddleware,
    Receive,
    Scope,
    Send,
    bearer_token,
    error_body,
    send_json,
)
from guard.engine import Guard
from guard.errors import ConfigError
from guard.offline import OfflineUpstream
from guard.upstream import DEFAULT_TIMEOUT, Forwarder

OFFLINE_BASE_URL = "http://guard-offline.invalid/v1"
"""Never resolved: in offline mode the forwarder's transport answers in-process."""

SERVER_OPTIONS: Mapping[str, Any] = MappingProxyType({"log_level": "info", "server_header": False})
"""The uvicorn options of ``guard serve`` (``bench/proxy.py`` runs its bare baseline with them)."""


def hash_client_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def parse_client_keys(value: str | Iterable[str] | None) -> frozenset[str]:
    """Client keys as hashes: entries are raw keys or ``sha256:<hex>`` (comma-separated)."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else list(value)
    hashes = set()
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.startswith("sha256:"):
            if len(item) != 71:
                raise ConfigError(f"client key hash {item[:14]}… is not sha256:<64 hex digits>")
            hashes.add(item.lower())
        else:
            hashes.add(hash_client_key(item))
    return frozenset(hashes)


@dataclass(frozen=True)
class ProxyConfig:
    upstream_url: str
    server_key: str | None = field(default=None, repr=False)
    client_keys: frozenset[str] = field(default=frozenset(), repr=False)
    passthrough: tuple[str, ...] = ()
    """Path prefixes forwarded unguarded (e.g. ``/v1/files``) — an explicit opt-in."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    offline: bool = False

    def __post_init__(self) -> None:
        if self.server_key and not self.client_keys:
            raise ConfigError(
                "OPENAI_API_KEY is set on the server, so clients must present one of "
                "GUARD_CLIENT_KEYS (comma-separated keys or sha256:<hex> hashes); set it, "
                "or unset OPENAI_API_KEY so clients bring their own key. Guard is never an "
                "open relay.")


class ClientKeyCheck:
    """With a server key, only configured client keys get in (401 otherwise)."""

    def __init__(self, app: ASGIApp, client_keys: frozenset[str]) -> None:
        self.app = app
        self.client_keys = client_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in ("/healthz",):
            key = bearer_token(scope)
            known = key is not None and any(
                hmac.compare_digest(hash_client_key(key), h) for h in self.client_keys)
            if not known:
                await send_json(send, 401, error_body(
                    "Missing or unknown API key for this Guard proxy.", code="invalid_api_key"))
                return
        await self.app(scope, receive, send)


class Router:
    """The routes the proxy answers; everything else is a clear 404."""

    def __init__(self, forwarder: Forwarder, passthrough: Sequence[str]) -> None:
        self.forwarder = forwarder
        self.passthrough = tuple(passthrough)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        path, method = scope["path"], scope.get("method", "GET")
        if path == "/healthz" and method == "GET":
            await send_json(send, 200, b'{"status":"ok"}')
            return
        if ((method == "POST" and path.endswith("/chat/completions"))
                or (method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")))
                or any(path.startswith(p) for p in self.passthrough)):
            await self.forwarder(scope, receive, send)
            return
        await send_json(send, 404, error_body(
            f"Guard does not handle {method} {path}. Guarded: POST /v1/chat/completions; "
            "passed through: GET /v1/models. Add a path prefix to GUARD_PASSTHROUGH to forward "
            "it unguarded.", code="guard.unknown_route"))


class ProxyApp:
    """The whole proxy as one ASGI app, with a lifespan that closes what it opened."""

    def __init__(self, guard: Guard, config: ProxyConfig, *, transport: Any = None,
                 timeout: httpx2.Timeout | None = None) -> None:
        self.guard = guard
        self.config = config
        self.offline_upstream: OfflineUpstream | None = None
        if config.offline and transport is None:
            self.offline_upstream = OfflineUpstream()
            transport = httpx2.ASGITransport(app=self.offline_upstream)
        self.forwarder = Forwarder(config.upstream_url, api_key=config.server_key,
                                   transport=transport, timeout=timeout or DEFAULT_TIMEOUT)
        app: ASGIApp = Router(self.forwarder, config.passthrough)
        app = GuardMiddleware(app, guard=guard, max_body_bytes=config.max_body_bytes)
        if config.server_key:
            app = ClientKeyCheck(app, config.client_keys)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.forwarder.aclose()
                self.guard.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    guard: Guard,
    *,
    upstream_url: str | None = None,
    server_key: str | None = None,
    client_keys: str | Iterable[str] | None = None,
    passthrough: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    offline: bool = False,
    transport: Any = None,
    timeout: httpx2.Timeout | None = None,
) -> ProxyApp:
    """Build the proxy around ``guard``.

    >>> guard = Guard.from_policy("default")  # doctest: +SKIP
    >>> app = create_app(guard, upstream_url="https://api.openai.com/v1")  # doctest: +SKIP
    """
    config = ProxyConfig(
        upstream_url=OFFLINE_BASE_URL if offline else (upstream_url or guard.settings.upstream_url),
        server_key=server_key,
        client_keys=parse_client_keys(client_keys),
        passthrough=tuple(passthrough),
        max_body_bytes=max_body_bytes,
        offline=offline,
    )
    return ProxyApp(guard, config, transport=transport, timeout=timeout)


def is_offline(env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Offline when neither a server key nor an upstream is configured."""
    env = os.environ if env is None else env
    return not env.get("OPENAI_API_KEY") and not env.get("GUARD_UPSTREAM_URL")


def app_from_env() -> ProxyApp:
    """The app ``guard serve`` runs in each worker, configured by environment variables."""
    offline = is_offline()
    settings: dict[str, Any] = {"moderation_provider": "local"} if offline else {}
    guard = Guard.from_policy(os.environ.get("GUARD_POLICY") or "default", **settings)
    passthrough = [p.strip() for p in os.environ.get("GUARD_PASSTHROUGH", "").split(",")
                   if p.strip()]
    return create_app(
        guard,
        server_key=os.environ.get("OPENAI_API_KEY") or None,
        client_keys=os.environ.get("GUARD_CLIENT_KEYS"),
        passthrough=passthrough,
        max_body_bytes=int(os.environ.get("GUARD_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
        offline=offline,
    )
