"""Audit sink URLs: the one place that turns ``GUARD_AUDIT`` / ``audit.sink`` into a sink.

==================================  =============================================================
URL                                 destination
==================================  =============================================================
``stdout`` or ``stdout://``         JSON lines on standard output
``jsonl:///var/log/guard/a.jsonl``  JSON lines appended to ``/var/log/guard/a.jsonl`` (absolute)
``jsonl://audit/a.jsonl``           JSON lines appended to ``./audit/a.jsonl`` (relative)
``sqlite:///guard-audit.db``        SQLite file ``./guard-audit.db`` (relative, 3 slashes)
``sqlite:////var/lib/guard/a.db``   SQLite file ``/var/lib/guard/a.db`` (absolute, 4 slashes)
``sqlite://guard-audit.db``         same as ``sqlite:///guard-audit.db``
``memory://`` or ``memory://name``  a process-wide :class:`MemorySink` per name (tests)
``postgresql://u:pw@host:5432/db``  PostgreSQL (``postgres://`` too; libpq query parameters kept)
==================================  =============================================================

The two file schemes differ on purpose, each following the convention its users know:
``jsonl://`` reads like ``file://`` (everything after ``//`` is the path, so a third slash
starts an absolute path), ``sqlite://`` like SQLAlchemy (the path starts after the third
slash, so an absolute path needs four). Relative paths are resolved against the working
directory when the sink is opened, so a later ``chdir`` does not move the trail; ``~`` is
expanded. Otherwise paths are taken literally: no percent-decoding, no query string.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

from guard.audit.sinks import (
    AuditSink,
    JsonlSink,
    MemorySink,
    StdoutSink,
    iter_jsonl,
    named_memory_sink,
)
from guard.audit.sqlite import SQLiteSink, read_sqlite
from guard.audit.store import AuditStore, memory_store, postgres_store, sqlite_store
from guard.errors import ConfigError

_SUPPORTED = (
    "supported audit sinks: "
    "'stdout', "
    "'jsonl:///var/log/guard/audit.jsonl' (absolute) or 'jsonl://audit.jsonl' (relative), "
    "'sqlite:///guard-audit.db' (relative) or 'sqlite:////var/lib/guard/audit.db' (absolute), "
    "'postgresql://user:password@host:5432/database', "
    "'memory://'"
)
_DEFAULT_MEMORY = "default"


def _split(url: str) -> tuple[str, str]:
    """``(scheme, rest)``; the bare word ``stdout`` counts as ``stdout://``."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        if scheme.lower() == "stdout":
            return "stdout", ""
        raise ConfigError(f"audit sink {url!r} is not a URL; {_SUPPORTED}")
    return scheme.lower(), rest


def _path(url: str, scheme: str, rest: str) -> Path:
    if scheme == "sqlite" and rest.startswith("/"):
        rest = rest[1:]  # SQLAlchemy form: 'sqlite:///x.db' is relative, '////x.db' absolute
    if not rest:
        raise ConfigError(f"audit sink {url!r} names no file; {_SUPPORTED}")
    path = Path(rest).expanduser().absolute()
    if path.is_dir():
        raise ConfigError(f"audit sink {url!r} is a directory, not a file")
    return path


def _is_control(record: dict[str, Any]) -> bool:
    return str(record.get("event", "")).startswith("guard.audit.")


def open_sink(url: str) -> AuditSink:
    """Build the sink a URL names (see the table in this module's docstring).

    Raises :class:`ConfigError` for an unknown scheme (listing the supported ones), for a
    file that cannot be created and for a PostgreSQL server that refuses the credentials or
    lacks the database. A PostgreSQL server that is down is not an error: the writer spools
    until it is back.

    >>> sink = open_sink("memory://doctest")
    >>> type(sink).__name__
    'MemorySink'
    """
    scheme, rest = _split(url)
    if scheme == "stdout":
        if rest:
            raise ConfigError(f"audit sink {url!r}: stdout takes no path; use 'stdout'")
        return StdoutSink()
    if scheme == "memory":
        return named_memory_sink(rest or _DEFAULT_MEMORY)
    if scheme in ("postgresql", "postgres"):
        from guard.audit.postgres import PostgresSink

        return PostgresSink(url.strip())
    if scheme == "jsonl":
        path = _path(url, scheme, rest)
        try:
            return JsonlSink(path)
        except OSError as exc:
            raise ConfigError(f"audit sink {url!r}: cannot open {path}: {exc}") from exc
    if scheme == "sqlite":
        return SQLiteSink(_path(url, scheme, rest))
    raise ConfigError(f"unknown audit sink scheme {scheme + '://'!r} in {url!r}; {_SUPPORTED}")


def read_records(source: str | MemorySink, limit: int | None = None) -> list[dict[str, Any]]:
    """The records in an audit store, oldest first; with ``limit``, only the newest ``limit``.

    ``source`` is a sink URL (``sqlite``, ``postgresql``, ``jsonl`` or ``memory``) or a
    :class:`MemorySink`. Reading never creates a store: a missing file raises
    :class:`ConfigError`. Trail events (chain markers, purges) are left out of the stores.

    >>> read_records("memory://empty-example")
    []
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if isinstance(source, MemorySink):
        records = source.records
    else:
        scheme, rest = _split(source)
        if scheme == "memory":
            records = named_memory_sink(rest or _DEFAULT_MEMORY).records
        elif scheme in ("sqlite", "jsonl"):
            path = _path(source, scheme, rest)
            if not path.is_file():
                raise ConfigError(f"no audit store at {path} (from {source!r})")
            if scheme == "sqlite":
                return read_sqlite(path, limit)
            # A bounded deque: the newest ``limit`` lines without holding the whole file.
            records = list(deque((r for r in iter_jsonl(path) if not _is_control(r)),
                                 maxlen=limit))
        elif scheme in ("postgresql", "postgres"):
            with open_store(source) as store:
                found = [r.record for r in store.records(limit=limit, newest_first=True)]
            found.reverse()
            return found
        else:
            raise ConfigError(
                f"audit sink {source!r} cannot be read back; use a sqlite://, postgresql://, "
                "jsonl:// or memory:// sink"
            )
    if limit is None:
        return records
    return records[len(records) - limit:] if limit else []


def open_store(url: str, *, writable: bool = False) -> AuditStore:
    """The reading side of the store a sink URL names (see :mod:`guard.audit.store`).

    ``sqlite://`` and ``postgresql://`` are opened read-only unless ``writable`` (purge);
    ``jsonl://`` files and ``memory://`` sinks are loaded into memory and are read-only.
    Raises :class:`ConfigError` for a missing file, an unknown scheme or a store that
    cannot be reached (the message says which and why).
    """
    scheme, rest = _split(url)
    if scheme == "sqlite":
        return sqlite_store(_path(url, scheme, rest), label=url, writable=writable)
    if scheme in ("postgresql", "postgres"):
        from guard.audit.errors import StoreError

        try:
            return postgres_store(url.strip(), writable=writable)
        except StoreError as exc:
            raise ConfigError(str(exc)) from None
    if writable:
        raise ConfigError(f"audit sink {url!r} cannot be changed; purge works on sqlite:// "
                          "and postgresql:// stores")
    if scheme in ("jsonl", "memory"):
        if scheme == "jsonl":
            path = _path(url, scheme, rest)
            if not path.is_file():
                raise ConfigError(f"no audit file at {path} (from {url!r})")
            records = list(iter_jsonl(path))
        else:
            records = named_memory_sink(rest or _DEFAULT_MEMORY).records
        return memory_store(records, label=url)
    raise ConfigError(f"audit sink {url!r} cannot be read back; use a sqlite://, postgresql://, "
                      "jsonl:// or memory:// sink")
