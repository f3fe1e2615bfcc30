"""The audit writer: takes records off the request path, chains them and writes them in batches.

Why a thread and not a task: callers are sync code, async code and atexit alike, and
sinks do blocking I/O (files, sqlite3, PostgreSQL). One daemon thread owns the sink; ``emit``
only appends to an in-memory queue under a lock, so it never waits for a disk or a
database. Hashing (see ``chain``) happens in that thread too.

Where records can go when things go wrong, and how each case is counted in ``stats``:

* The queue holds ``max_queue`` records. Past that, ``emit`` still does not block: up to
  ``max_overflow`` more records are kept in an overflow headroom (``overflowed``), and a
  rate-limited warning is logged. Only when the headroom is full too is a new record
  refused (``dropped``), with a warning - never silently.
* With a spool (the SQLite and PostgreSQL stores have one by default, see ``spool``), a
  batch the store does not take goes at once to a local append-only file and is replayed,
  in order, when the store is back (``spooled``, ``spool_pending``, ``spool_bytes``); until
  then new batches queue up behind it in the spool, so the in-memory queue never stalls on a
  dead database. Spools left by a crashed process are taken over and replayed
  (``recovered``).
* Without a spool (stdout, JSON lines, memory), or when the spool itself cannot be written
  (disk full), the writer keeps the batch and retries it with exponential backoff (capped
  at ``max_backoff_s``) while new records wait in the bounded queue (``failed_batches``).
  Warnings name the error type, never record contents.
* ``close`` ends the chain, waits up to ``timeout`` for everything to be written and gives
  up then: records in the spool stay there for the next start (not lost); records only in
  memory are counted as ``dropped`` and reported in a warning.
* The writer closes itself at interpreter exit (``atexit``), so a clean exit loses nothing.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TypedDict

from guard.audit.chain import MARKERS, Chain, hmac_key_from_env
from guard.audit.errors import StoreError
from guard.audit.sinks import AuditSink, to_jsonable
from guard.audit.spool import Spool, SpoolFile

log = logging.getLogger("guard.audit")

_WARN_EVERY_S = 10.0
_REPLAY_BATCHES_PER_TURN = 5  # then look at the queue again, so it never fills up


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()
"""Stands for "from the environment / from the sink" in :class:`AuditWriter` arguments."""


class WriterStats(TypedDict):
    """Counters of an :class:`AuditWriter`.

    ``emitted == written + dropped + queued + spool_pending`` at any time.
    """

    emitted: int
    """Records passed to ``emit``."""
    written: int
    """Records the sink accepted (directly or replayed from the spool)."""
    queued: int
    """Queue depth: records waiting in memory (queue, overflow headroom, batch in hand)."""
    overflowed: int
    """Records that went to the overflow headroom because the queue was full."""
    dropped: int
    """Records lost: refused with queue and headroom full, emitted after close, or still
    only in memory when ``close`` gave up."""
    failed_batches: int
    """``sink.write`` calls that raised (each retry counts)."""
    last_error: str | None
    """Type of the last ``sink.write`` error, ``None`` after a successful write."""
    spooled: int
    """Records that went to the spool because the store did not take them."""
    spool_pending: int
    """Records of this writer waiting in its spool for the store."""
    spool_bytes: int
    """Bytes waiting in spool files (this writer's and those taken over)."""
    recovered: int
    """Records of other (crashed) writers replayed from their spools."""
    chain: str | None
    """This writer's chain id (``None`` with ``chain=False``)."""


def _describe(exc: BaseException) -> str:
    """An error for a log line, without anything that could come from a record.

    Messages of OS, SQLite and audit store errors are about files, locks and connections;
    any other exception (a custom sink) might quote the record it failed on, so only its
    type is given.
    """
    name = type(exc).__qualname__
    if isinstance(exc, OSError | sqlite3.Error | StoreError):
        return f"{name}: {str(exc)[:200]}"
    return name


def _own(records: list[dict[str, Any]]) -> int:
    """How many of ``records`` were emitted (not markers the writer added)."""
    return sum(1 for r in records if r.get("event") not in MARKERS)


class AuditWriter:
    """Writes audit records to a sink from one background thread, in batches.

    >>> from guard.audit import MemorySink
    >>> sink = MemorySink()
    >>> writer = AuditWriter(sink)
    >>> writer.emit({"request_id": "r1", "decision": "allow"})
    >>> writer.close()
    >>> [(r["request_id"], r["seq"]) for r in sink.records]
    [('r1', 0)]

    ``batch_size`` records, or whatever arrived within ``flush_interval_s`` of the first
    waiting one, go to ``sink.write`` in one call. See the module docstring for what happens
    when the queue is full or the sink fails.

    ``chain``: link records into this writer's hash chain (``chain``, ``seq``, ``prev_hash``,
    ``hash``). ``hmac_key``: key for the chain's HMAC; by default ``GUARD_AUDIT_HMAC_KEY``.
    ``spool_dir``: where to spool when the sink fails; by default the sink's ``spool_dir``
    attribute if it has one (``None``: no spool). Chain start and end markers are written
    when the sink says so (``chain_markers``: the stores and JSON lines).
    """

    def __init__(
        self,
        sink: AuditSink,
        *,
        max_queue: int = 10_000,
        batch_size: int = 200,
        flush_interval_s: float = 0.2,
        max_overflow: int = 1_000,
        max_backoff_s: float = 5.0,
        chain: bool = True,
        hmac_key: bytes | str | _Default | None = DEFAULT,
        spool_dir: str | Path | _Default | None = DEFAULT,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or max_overflow < 0:
            raise ValueError("max_queue and batch_size must be >= 1, max_overflow >= 0")
        if flush_interval_s < 0 or max_backoff_s <= 0:
            raise ValueError("flush_interval_s must be >= 0 and max_backoff_s > 0")
        self._sink = sink
        self._max_queue = max_queue
        self._max_pending = max_queue + max_overflow
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_backoff_s = max_backoff_s

        key = hmac_key_from_env() if isinstance(hmac_key, _Default) else hmac_key
        self._chain = Chain(key.encode() if isinstance(key, str) else key) if chain else None
        self._markers = chain and bool(getattr(sink, "chain_markers", False))
        if isinstance(spool_dir, _Default):
            spool_dir = getattr(sink, "spool_dir", None)
        # The spool is named after the chain: one file per writer, never shared.
        name = self._chain.id if self._chain else secrets.token_hex(8)
        self._spool = Spool(Path(spool_dir), name) if spool_dir is not None else None
        self._replay_at: float | None = None
        self._replay_failures = 0

        self._cond = threading.Condition()
        self._pending: deque[dict[str, Any]] = deque()
        self._in_flight = 0  # records taken off the queue, not yet written or spooled
        # Accepted records are written in order, so "settled" (written, dropped, or left in
        # the spool by close) is a watermark flush() can wait on.
        self._accepted = 0
        self._settled = 0
        self._flush_waiters = 0
        self._closing = False  # no new records; drain and stop
        self._abandon = False  # close timed out: stop retrying
        self._stats = WriterStats(
            emitted=0, written=0, queued=0, overflowed=0, dropped=0, failed_batches=0,
            last_error=None, spooled=0, spool_pending=0, spool_bytes=0, recovered=0,
            chain=self._chain.id if self._chain else None,
        )
        self._last_warning: dict[str, float] = {}

        self._thread = threading.Thread(target=self._run, name="guard-audit-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- caller side: must never block on I/O or raise into the request path --------------

    def emit(self, record: Mapping[str, Any]) -> None:
        """Queue one record for writing and return at once.

        The record is copied (shallowly) here and made JSON-safe in the writer thread;
        do not mutate nested values after emitting. Safe from any thread and from inside a
        running event loop.
        """
        item = dict(record)
        with self._cond:
            self._stats["emitted"] += 1
            if self._closing:
                self._stats["dropped"] += 1
                refused = "closed"
            elif len(self._pending) >= self._max_pending:
                self._stats["dropped"] += 1
                refused = "full"
            else:
                refused = ""
                if len(self._pending) >= self._max_queue:
                    self._stats["overflowed"] += 1
                self._pending.append(item)
                self._accepted += 1
                # Wake the writer only when it has something new to decide on.
                if len(self._pending) in (1, self._batch_size):
                    self._cond.notify_all()
            overflowed = len(self._pending) > self._max_queue
        if refused == "closed":
            self._warn("closed", "audit record emitted after the writer was closed; dropped")
        elif refused == "full":
            self._warn("dropped", "audit queue and overflow full; records dropped so far: %d",
                       self._stats["dropped"])
        elif overflowed:
            self._warn("overflow", "audit queue full (sink too slow); records overflowed so "
                       "far: %d", self._stats["overflowed"])

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record emitted before this call is in the sink (or dropped).

        Returns ``False`` if that did not happen within ``timeout`` seconds - for instance
        while the store is down and the records wait in the spool. Blocking: meant for tests
        and shutdown, not for the request path.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._settled < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 5.0) -> None:
        """End the chain, write what is queued, stop the thread, close the sink. Idempotent.

        Waits at most ``timeout`` seconds. Records the sink could not take by then stay in
        the spool for the next start, or - without a spool - are counted as dropped; either
        way a warning says so.
        """
        with self._cond:
            first = not self._closing
            self._closing = True
            self._cond.notify_all()
        if not first:
            return
        atexit.unregister(self.close)
        if threading.current_thread() is self._thread:
            return  # closed from inside sink.write: the loop ends on its own
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._cond:
                self._abandon = True
                lost = self._accepted - self._settled - self._stats["spool_pending"]
                spooled = self._stats["spool_pending"]
                self._cond.notify_all()
            # Give the thread a moment to let go of the spool (its lock) and the sink, unless
            # it is stuck inside sink.write.
            self._thread.join(1.0)
            if lost:
                log.warning("audit writer closed with %d records unwritten (sink failing or "
                            "too slow); they are lost", lost)
            if spooled:
                log.warning("audit writer closed with %d records in the spool %s; they are "
                            "written when a writer for this store starts again", spooled,
                            self._spool.directory if self._spool else "")

    @property
    def running(self) -> bool:
        """True while the writer takes records (not closed, its thread alive)."""
        with self._cond:
            return not self._closing and self._thread.is_alive()

    @property
    def has_spool(self) -> bool:
        """True when batches the store refuses go to a local spool instead of waiting."""
        return self._spool is not None

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters (see :class:`WriterStats`)."""
        with self._cond:
            stats = self._stats.copy()
            stats["queued"] = len(self._pending) + self._in_flight
            return stats

    def _warn(self, key: str, message: str, *args: object) -> None:
        # At most one warning per kind every few seconds: a stalled sink must not turn
        # into a log flood on the request path.
        now = time.monotonic()
        with self._cond:
            last = self._last_warning.get(key)
            if last is not None and now - last < _WARN_EVERY_S:
                return
            self._last_warning[key] = now
        log.warning(message, *args)

    # -- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._adopt_orphans()
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                if batch:
                    records = self._jsonable(batch)
                    if records:
                        self._deliver(self._link(records))
                self._replay(due_only=True)
            if not self._abandon:
                self._end_chain()
                self._drain_spool()
        except Exception as exc:  # a bug here must not go unnoticed, nor leave flush hanging
            log.error("audit writer stopped: %s", _describe(exc))
        finally:
            try:
                self._sink.close()
            except Exception as exc:
                log.warning("closing the audit sink failed: %s", _describe(exc))
            if self._spool is not None:
                self._spool.close()
            with self._cond:
                # Whatever is left in memory can no longer be written; settle it so flush
                # returns, and refuse (and count) what is emitted from now on. Records in
                # the spool are settled but not dropped: the next start replays them.
                self._closing = True
                self._drop_locked(len(self._pending) + self._in_flight)
                self._settled += self._stats["spool_pending"]
                self._pending.clear()
                self._in_flight = 0
                self._cond.notify_all()

    def _jsonable(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``batch`` made JSON-safe; a record that cannot be (a cycle) is dropped, counted."""
        records: list[dict[str, Any]] = []
        for record in batch:
            try:
                records.append(to_jsonable(record))
            except Exception as exc:
                with self._cond:
                    self._in_flight -= 1
                    self._drop_locked(1)
                    self._cond.notify_all()
                log.warning("audit record dropped: cannot be made JSON-safe (%s)",
                            type(exc).__qualname__)
        return records

    def _link(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._chain is None:
            return records
        if self._markers and not self._chain.started:
            records = [self._chain.start_marker(), *records]
        return [self._chain.link(r) for r in records]

    def _end_chain(self) -> None:
        if self._chain is not None and self._markers and self._chain.started:
            self._deliver([self._chain.link(self._chain.end_marker())])

    def _drop_locked(self, n: int) -> None:
        self._stats["dropped"] += n
        self._settled += n

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait for a full batch, the flush interval, a flush, close or a spool replay.

        ``None`` means stop; an empty list means "time to replay the spool".
        """
        with self._cond:
            deadline: float | None = None
            while True:
                if self._abandon:
                    return None
                replay_at = self._replay_at if self._spool and self._spool.has_pending else None
                now = time.monotonic()
                if not self._pending:
                    if self._closing:
                        return None
                    deadline = None
                    if replay_at is None:
                        self._cond.wait()
                    elif now >= replay_at:
                        return []
                    else:
                        self._cond.wait(replay_at - now)
                    continue
                if (len(self._pending) >= self._batch_size or self._flush_waiters
                        or self._closing or (replay_at is not None and now >= replay_at)):
                    break
                if deadline is None:
                    deadline = now + self._flush_interval_s
                if now >= deadline:
                    break
                self._cond.wait(min(deadline, replay_at or deadline) - now)
            n = min(self._batch_size, len(self._pending))
            batch = [self._pending.popleft() for _ in range(n)]
            self._in_flight = n
            return batch

    def _write(self, records: list[dict[str, Any]]) -> bool:
        """One ``sink.write``; ``False`` (counted, warned) if it raised."""
        try:
            self._sink.write(records)
        except Exception as exc:
            with self._cond:
                self._stats["failed_batches"] += 1
                self._stats["last_error"] = type(exc).__qualname__
            self._warn("write", "audit sink write failed (%s); %d records %s", _describe(exc),
                       len(records), "go to the spool" if self._spool else "will be retried")
            return False
        with self._cond:
            self._stats["last_error"] = None
        return True

    def _to_spool(self, records: list[dict[str, Any]], own: int) -> bool:
        assert self._spool is not None
        try:
            self._spool.append(records)
        except OSError as exc:
            self._warn("spool", "audit spool cannot be written (%s); %d records are kept in "
                       "memory and retried", _describe(exc), len(records))
            return False
        with self._cond:
            self._in_flight = 0
            self._stats["spooled"] += own
            self._stats["spool_pending"] += own
            self._stats["spool_bytes"] = self._spool.pending_bytes
        if self._replay_at is None:
            self._replay_at = time.monotonic() + self._backoff()
        return True

    def _written(self, own: int) -> None:
        with self._cond:
            self._stats["written"] += own
            self._settled += own
            self._in_flight = 0
            self._cond.notify_all()

    def _deliver(self, records: list[dict[str, Any]]) -> None:
        """Write ``records`` to the sink, or the spool, retrying until one takes them.

        Order within the chain is kept: while this writer's spool holds records, new ones
        go behind them into the spool, never past them into the store.
        """
        own = _own(records)
        attempt = 0
        while True:
            if self._spool is not None and self._spool.own_pending:
                if self._to_spool(records, own):
                    return
            elif self._write(records):
                self._written(own)
                if attempt:
                    log.warning("audit sink recovered after %d failed attempts", attempt)
                return
            elif self._spool is not None and self._to_spool(records, own):
                return
            attempt += 1
            delay = min(0.05 * 2 ** (attempt - 1), self._max_backoff_s)
            # Only close giving up cuts the backoff short; emits and flushes do not.
            resume = time.monotonic() + delay
            with self._cond:
                while not self._abandon and (left := resume - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._abandon:
                    return  # _run settles the in-flight batch as dropped
            if self._spool is not None:
                self._replay(due_only=False)

    # -- spool replay ----------------------------------------------------------------------

    def _backoff(self) -> float:
        return min(0.05 * 2.0 ** self._replay_failures, self._max_backoff_s)

    def _adopt_orphans(self) -> None:
        if self._spool is None:
            return
        try:
            waiting = self._spool.adopt_orphans()
        except OSError as exc:
            log.warning("audit spool directory %s cannot be read: %s", self._spool.directory,
                        _describe(exc))
            return
        if waiting:
            log.warning("audit: replaying %d bytes of spool left by another writer in %s",
                        waiting, self._spool.directory)
            self._replay_at = time.monotonic()
            with self._cond:
                self._stats["spool_bytes"] = self._spool.pending_bytes

    def _replay(self, *, due_only: bool) -> bool:
        """Replay some spooled batches; ``False`` if the store refused one."""
        spool = self._spool
        if spool is None or not spool.has_pending:
            return True
        if due_only and self._replay_at is not None and time.monotonic() < self._replay_at:
            return True
        for _ in range(_REPLAY_BATCHES_PER_TURN):
            current = spool.next_file()
            if current is None:
                break
            if not self._replay_batch(spool, current):
                self._replay_failures += 1
                self._replay_at = time.monotonic() + self._backoff()
                return False
        if spool.has_pending:
            self._replay_at = time.monotonic()
        else:
            if self._replay_failures:
                log.warning("audit store recovered; the spool has been replayed")
            self._replay_failures = 0
            self._replay_at = None
        return True

    def _replay_batch(self, spool: Spool, current: SpoolFile) -> bool:
        records, offset = current.read(self._batch_size)
        if records and not self._write(records):
            return False
        own = _own(records) if current.own else 0
        try:
            current.commit(offset)
        except OSError as exc:  # the records are stored; a replay would only repeat them
            log.warning("audit spool offset cannot be saved: %s", _describe(exc))
        if current.pending_bytes == 0:
            spool.done(current)
        with self._cond:
            if current.own:
                self._stats["written"] += own
                self._stats["spool_pending"] -= own
                self._settled += own
            else:
                self._stats["recovered"] += _own(records)
            self._stats["spool_bytes"] = spool.pending_bytes
            self._cond.notify_all()
        return True

    def _drain_spool(self) -> None:
        """At close: replay until the spool is empty or close gives up."""
        while self._spool is not None and self._spool.has_pending:
            if self._replay(due_only=False):
                continue
            with self._cond:
                resume = self._replay_at or time.monotonic()
                while not self._abandon and (left := resume - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._abandon:
                    return
