"""The OpenAI-compatible proxy: client-key check → GuardMiddleware → routes → Forwarder.

Point any OpenAI SDK at ``http://host:port/v1``. Guarded routes (``POST /v1/chat/completions``,
``/v1/responses``, ``/v1/embeddings``) go through the engine; ``GET /v1/models`` passes
through; every other route is refused with 404 unless it is listed as pass-through in
configuration (``GUARD_PASSTHROUGH``) — there is no silent unguarded path. A pass-through
prefix never unguards a guarded route: the middleware in front of the router sees it first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from guard.batch.crypto import optional_batch_key
from guard.batch.routes import DEFAULT_MAX_UPLOAD_BYTES, BatchRoutes
from guard.batch.store import MapsStore, default_dir
from guard.engine import Guard
from guard.errors import ConfigError
from guard.limits import DEFAULT_MAX_HEADER_BYTES, HeaderLimit
from guard.offline import OfflineUpstream
from guard.ops.server import Operations
from guard.upstream import DEFAULT_MAX_DURATION_S, DEFAULT_TIMEOUT, Forwarder
from guard.wire import API_ROUTES

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
    metrics: bool = True
    """Serve ``GET /metrics`` (Prometheus)."""
    policy_source: str | None = None
    """The policy file (or pack name) to reload on ``SIGHUP``; ``None``: no reload."""
    policy_watch_s: float | None = None
    """Also reload when the policy file changes, polling this often."""
    batch_key: str | None = field(default=None, repr=False)
    """Encrypts batch maps (``GUARD_BATCH_KEY``); without it batch uploads are refused."""
    batch_dir: Path | None = None
    """Where batch maps are kept (``GUARD_BATCH_DIR``; default ``~/.local/state/guard/batch-maps``)."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    upstream_max_s: float = DEFAULT_MAX_DURATION_S
    """A whole upstream exchange (a never-ending stream included) ends after this long."""
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES

    def __post_init__(self) -> None:
        for prefix in self.passthrough:
            if not prefix.startswith("/v1/") or prefix.rstrip("/") == "/v1":
                raise ConfigError(
                    f"pass-through prefix {prefix!r} must be a path under /v1/ such as "
                    "/v1/files (GUARD_PASSTHROUGH is comma-separated; /v1 alone would "
                    "forward everything unguarded)")
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

    def __init__(self, forwarder: Forwarder, passthrough: Sequence[str],
                 batch: BatchRoutes | None = None) -> None:
        self.forwarder = forwarder
        self.passthrough = tuple(passthrough)
        self.batch = batch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        path, method = scope["path"], scope.get("method", "GET")
        if self.batch is not None and self.batch.handles(path):
            await self.batch(scope, receive, send)
            return
        if ((method == "POST" and path in API_ROUTES)
                or (method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")))
                or any(_under(path, p) for p in self.passthrough)):
            await self.forwarder(scope, receive, send)
            return
        await send_json(send, 404, error_body(
            f"Guard does not handle {method} {path}. Guarded: POST "
            f"{', '.join(API_ROUTES)}, batch files (/v1/files, /v1/batches); "
            "passed through: GET /v1/models"
            f"{''.join(', ' + p for p in self.passthrough)}. Add a path prefix to "
            "GUARD_PASSTHROUGH to forward it unguarded.", code="guard.unknown_route"))


def _under(path: str, prefix: str) -> bool:
    """``/v1/files/x`` is under ``/v1/files`` (and ``/v1/files/``); ``/v1/filesx`` is not."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


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
                                   transport=transport, timeout=timeout or DEFAULT_TIMEOUT,
                                   max_duration_s=config.upstream_max_s)
        store = (MapsStore(config.batch_dir or default_dir(), config.batch_key)
                 if config.batch_key else None)
        batch = BatchRoutes(guard, self.forwarder, store=store, passthrough=config.passthrough,
                            max_upload_bytes=config.max_upload_bytes)
        app: ASGIApp = Router(self.forwarder, config.passthrough, batch)
        app = GuardMiddleware(app, guard=guard, max_body_bytes=config.max_body_bytes)
        if config.server_key:
            app = ClientKeyCheck(app, config.client_keys)
        self.app = HeaderLimit(app, config.max_header_bytes)
        self.ops = Operations(guard, metrics=config.metrics, policy_source=config.policy_source,
                              watch_interval_s=config.policy_watch_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if await self.ops.handle(scope, receive, send):  # probes and metrics: no key needed
            return
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.ops.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # The server has stopped accepting and finished (or timed out) in-flight
                # requests; now flush the audit trail.
                await self.ops.shutdown()
                await self.forwarder.aclose()
                await self.guard.aclose_clients()
                await asyncio.to_thread(self.guard.close)
                self.ops.closed()
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
    metrics: bool = True,
    policy_source: str | None = None,
    policy_watch_s: float | None = None,
    batch_key: str | None = None,
    batch_dir: str | Path | None = None,
    upstream_max_s: float = DEFAULT_MAX_DURATION_S,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
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
        metrics=metrics,
        policy_source=policy_source,
        policy_watch_s=policy_watch_s,
        batch_key=batch_key,
        batch_dir=Path(batch_dir) if batch_dir is not None else None,
        upstream_max_s=upstream_max_s,
        max_header_bytes=max_header_bytes,
    )
    return ProxyApp(guard, config, transport=transport, timeout=timeout)


def is_offline(env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Offline when neither a server key nor an upstream is configured."""
    env = os.environ if env is None else env
    return not env.get("OPENAI_API_KEY") and not env.get("GUARD_UPSTREAM_URL")


def passthrough_from_env(env: dict[str, str] | os._Environ[str] | None = None) -> tuple[str, ...]:
    """``GUARD_PASSTHROUGH``: comma-separated path prefixes forwarded unguarded."""
    env = os.environ if env is None else env
    return tuple(p.strip() for p in env.get("GUARD_PASSTHROUGH", "").split(",") if p.strip())


def app_from_env() -> ProxyApp:
    """The app ``guard serve`` runs in each worker, configured by environment variables."""
    from guard.ops.tracing import configure_tracing
    from guard.pii import get_detector
    from guard.policy import load_policy

    configure_tracing()
    _log_to_stderr()
    offline = is_offline()
    settings: dict[str, Any] = {"moderation_provider": "local"} if offline else {}
    source = os.environ.get("GUARD_POLICY") or "default"
    policy = load_policy(source)
    # Loaded now, warmed in the background: /readyz says 503 until the warm-up is done.
    detector = get_detector(os.environ.get("GUARD_SPACY_MODEL") or policy.pii.model, warm=False)
    guard = Guard.from_policy(policy, detector=detector, warm_up=False, **settings)
    passthrough = passthrough_from_env()
    return create_app(
        guard,
        server_key=os.environ.get("OPENAI_API_KEY") or None,
        client_keys=os.environ.get("GUARD_CLIENT_KEYS"),
        passthrough=passthrough,
        max_body_bytes=int(os.environ.get("GUARD_MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
        offline=offline,
        metrics=os.environ.get("GUARD_METRICS", "on").lower() not in ("0", "off", "false", "no"),
        policy_source=source,
        policy_watch_s=float(os.environ["GUARD_POLICY_WATCH_S"])
        if os.environ.get("GUARD_POLICY_WATCH_S") else None,
        batch_key=optional_batch_key(),
        upstream_max_s=float(os.environ.get("GUARD_UPSTREAM_MAX_SECONDS") or DEFAULT_MAX_DURATION_S),
        max_header_bytes=int(os.environ.get("GUARD_MAX_HEADER_BYTES") or DEFAULT_MAX_HEADER_BYTES),
    )


def _log_to_stderr() -> None:
    """``guard serve`` is an application: Guard's own log lines (reloads, audit trouble) go
    to stderr at INFO, unless something configured the ``guard`` logger already."""
    logger = logging.getLogger("guard")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
