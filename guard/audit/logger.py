"""The canonical ``guard.request`` event: a private structlog pipeline into the audit writer.

Guard is a library, so it never configures structlog (or logging) for the application.
Instead it wraps its own output object with explicit processors, wrapper class and
context class, so ``structlog.configure`` in the app changes nothing here and nothing
here changes the app's configuration.

The pipeline is the last line of defence for "never in a record": whatever the engine
put in, keys that carry text or credentials (:data:`FORBIDDEN_KEYS`) are stripped at any
depth before the record reaches a sink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TypedDict

import structlog

from guard.audit.writer import AuditWriter

log = logging.getLogger("guard.audit")

EVENT_NAME = "guard.request"
"""The name of the one audit event per call."""

FORBIDDEN_KEYS: frozenset[str] = frozenset({
    # text sent to or received from the model
    "messages", "prompt", "prompts", "content", "text", "input", "instructions",
    "completion", "choices",
    # credentials
    "api_key", "x_api_key", "authorization", "proxy_authorization", "cookie", "password",
    "secret",
    # the value <-> placeholder map
    "placeholders", "mapping",
})
"""Keys never allowed in an audit record, compared lowercase with ``-`` read as ``_``."""

# Paths where a forbidden name is a legitimate part of the record's schema:
# ``moderation.input`` is the verdict on the input, not the input.
_ALLOWED_PATHS: frozenset[tuple[str, ...]] = frozenset({("moderation", "input")})

_RECORD = "_guard_record"  # the one keyword the record travels under (see AuditLogger.emit)


class ForbidContent:
    """structlog processor that strips forbidden keys at any depth and counts them.

    It copies what it changes and never raises a key error back: stripping is the
    safe outcome, and the request must not fail because of its audit record. Each
    stripped key name is logged once (names only, never values).

    >>> forbid = ForbidContent()
    >>> forbid(None, "msg", {"event": "guard.request", "prompt": "hi", "route": "/v1"})
    {'event': 'guard.request', 'route': '/v1'}
    >>> forbid.stripped
    1
    """

    def __init__(self, keys: Iterable[str] = FORBIDDEN_KEYS) -> None:
        self._keys = frozenset(_normalise(k) for k in keys)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self.stripped = 0
        # Record keys repeat in every record: normalise each name once (bounded, so odd
        # records with ever-new keys cannot grow it without limit).
        self._names: dict[str, str] = {}

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        found: list[str] = []
        cleaned: dict[str, Any] = self._clean(event_dict, (), found)
        if not found:
            return cleaned
        with self._lock:
            self.stripped += len(found)
            new = sorted(set(found) - self._seen)
            self._seen.update(new)
        if new:
            log.warning("stripped forbidden keys from the audit record: %s", ", ".join(new))
        return cleaned

    def _clean(self, value: Any, path: tuple[str, ...], found: list[str]) -> Any:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                name = str(key)
                normal = self._names.get(name)
                if normal is None:
                    normal = _normalise(name)
                    if len(self._names) < 4096:
                        self._names[name] = normal
                if normal in self._keys and (*path, normal) not in _ALLOWED_PATHS:
                    found.append(".".join((*path, name)))
                    continue
                # Most values are scalars: only containers need the walk.
                out[name] = (self._clean(item, (*path, normal), found)
                             if isinstance(item, Mapping | list | tuple) else item)
            return out
        if isinstance(value, list | tuple):
            return [self._clean(item, path, found) for item in value]
        return value


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_")


def _canonical_event(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Unpack the record and name the event ``guard.request`` (overriding any ``event``)."""
    event: dict[str, Any] = {"event": EVENT_NAME}
    event.update(event_dict.pop(_RECORD, {}))
    event.update(event_dict)
    event["event"] = EVENT_NAME
    return event


def _as_argument(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Hand the event dict itself to the output object, not as keyword arguments."""
    return (event_dict,), {}


class _ToWriter:
    """The "logger" at the end of the pipeline: gives the finished event to the writer."""

    def __init__(self, writer: AuditWriter) -> None:
        self._writer = writer

    def msg(self, event_dict: Mapping[str, Any]) -> None:
        self._writer.emit(event_dict)


class LoggerStats(TypedDict):
    emitted: int
    """Events handed to the writer."""
    stripped_keys: int
    """Forbidden keys removed from records (each occurrence counts)."""
    errors: int
    """Records that could not be emitted because of an unexpected error (logged)."""


class AuditLogger:
    """Emits one ``guard.request`` event per call into an :class:`AuditWriter`.

    >>> from guard.audit import AuditWriter, MemorySink
    >>> sink = MemorySink()
    >>> writer = AuditWriter(sink, chain=False)
    >>> AuditLogger(writer).emit({"request_id": "r1", "prompt": "never stored"})
    >>> writer.close()
    >>> sink.records
    [{'event': 'guard.request', 'request_id': 'r1'}]

    :meth:`emit` never raises: an audit problem is logged and counted in :attr:`stats`, and
    the request goes on.
    """

    def __init__(
        self, writer: AuditWriter, *, forbidden_keys: Iterable[str] = FORBIDDEN_KEYS
    ) -> None:
        self._forbid = ForbidContent(forbidden_keys)
        self._lock = threading.Lock()
        self._emitted = 0
        self._errors = 0
        # Every setting explicit, so the global structlog configuration is never consulted
        # for behaviour, and never touched. No merge_contextvars: values an app binds for
        # its own logs (possibly prompt text) must not leak into the audit record.
        self._log: Any = structlog.wrap_logger(
            _ToWriter(writer),
            processors=[_canonical_event, self._forbid, _as_argument],
            wrapper_class=structlog.BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=False,
        ).bind()

    def emit(self, record: Mapping[str, Any]) -> None:
        """Strip forbidden keys from ``record``, name it ``guard.request`` and queue it."""
        try:
            # One keyword, not **record: record keys can never collide with structlog's
            # own parameters ("event", "method_name").
            self._log.msg(**{_RECORD: record})
        except Exception as exc:
            with self._lock:
                self._errors += 1
            log.warning("audit record not emitted: %s", type(exc).__qualname__)
            return
        with self._lock:
            self._emitted += 1

    @property
    def stats(self) -> LoggerStats:
        with self._lock:
            return LoggerStats(
                emitted=self._emitted, stripped_keys=self._forbid.stripped, errors=self._errors
            )
