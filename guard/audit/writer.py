"""The audit writer: takes records off the request path and writes them in the background.

Why a thread and not a task: callers are sync code, async code and atexit alike, and
sinks do blocking I/O (files, sqlite3). One daemon thread owns the sink; ``emit`` only
appends to an in-memory queue under a lock, so it never waits for a disk or a database.

Where records can go when things go wrong, and how each case is counted in ``stats``:

* The queue holds ``max_queue`` records. Past that, ``emit`` still does not block: up to
  ``max_overflow`` more records are kept in an overflow headroom (``overflowed``), and a
  rate-limited warning is logged. Blocking would stall every request behind a slow disk;
  writing synchronously would do the same on the event loop. Only when the headroom is
  full too is a new record refused (``dropped``), with a warning - never silently.
* A sink that raises keeps its batch: the writer retries it with exponential backoff
  (capped at ``max_backoff_s``) for as long as the writer lives, while new records wait in
  the bounded queue. Warnings name the error type, never record contents (``failed_batches``).
* ``close`` waits up to ``timeout`` for everything to be written; records still unwritten
  then (a sink that stayed down) are counted as ``dropped`` and reported in a warning.
* The writer closes itself at interpreter exit (``atexit``), so a clean exit loses nothing.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, TypedDict

from guard.audit.sinks import AuditSink, to_jsonable

log = logging.getLogger("guard.audit")

_WARN_EVERY_S = 10.0


class WriterStats(TypedDict):
    """Counters of an :class:`AuditWriter`; ``emitted == written + dropped + queued``."""

    emitted: int
    """Records passed to ``emit``."""
    written: int
    """Records the sink accepted."""
    queued: int
    """Records waiting: in the queue, in the overflow headroom or in a batch being retried."""
    overflowed: int
    """Records that went to the overflow headroom because the queue was full."""
    dropped: int
    """Records lost: refused with queue and headroom full, emitted after close, or still
    unwritten when ``close`` gave up."""
    failed_batches: int
    """``sink.write`` calls that raised (each retry counts)."""
    last_error: str | None
    """Type of the last ``sink.write`` error, ``None`` after a successful write."""


def _describe(exc: BaseException) -> str:
    """An error for a log line, without anything that could come from a record.

    Messages of OS and SQLite errors are about files and locks; any other exception (a
    custom sink) might quote the record it failed on, so only its type is given.
    """
    name = type(exc).__qualname__
    if isinstance(exc, OSError | sqlite3.Error):
        return f"{name}: {str(exc)[:200]}"
    return name


class AuditWriter:
    """Writes audit records to a sink from one background thread, in batches.

    >>> from guard.audit import MemorySink
    >>> sink = MemorySink()
    >>> writer = AuditWriter(sink)
    >>> writer.emit({"request_id": "r1", "decision": "allow"})
    >>> writer.close()
    >>> [r["request_id"] for r in sink.records]
    ['r1']

    ``batch_size`` records, or whatever arrived within ``flush_interval_s`` of the first
    waiting one, go to ``sink.write`` in one call. See the module docstring for what happens
    when the queue is full or the sink fails.
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

        self._cond = threading.Condition()
        self._pending: deque[dict[str, Any]] = deque()
        self._in_flight = 0  # records taken off the queue, not yet written
        # Accepted records are written in order, so "settled" (written, or dropped by
        # close) is a watermark flush() can wait on.
        self._accepted = 0
        self._settled = 0
        self._flush_waiters = 0
        self._closing = False  # no new records; drain and stop
        self._abandon = False  # close timed out: stop retrying
        self._stats = WriterStats(
            emitted=0, written=0, queued=0, overflowed=0, dropped=0, failed_batches=0,
            last_error=None,
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
        """Wait until every record emitted before this call is written (or dropped).

        Returns ``False`` if that did not happen within ``timeout`` seconds. Blocking:
        meant for tests and shutdown, not for the request path.
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
        """Write what is queued, stop the thread, close the sink. Idempotent.

        Waits at most ``timeout`` seconds; records the sink could not take by then are
        counted as dropped and reported in a warning.
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
                lost = self._accepted - self._settled
                self._cond.notify_all()
            log.warning("audit writer closed with %d records unwritten (sink failing or "
                        "too slow); they are lost", lost)

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
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                records = self._jsonable(batch)
                if records:
                    self._deliver(records)
        except Exception as exc:  # a bug here must not go unnoticed, nor leave flush hanging
            log.error("audit writer stopped: %s", _describe(exc))
        finally:
            try:
                self._sink.close()
            except Exception as exc:
                log.warning("closing the audit sink failed: %s", _describe(exc))
            with self._cond:
                # Whatever is left can no longer be written; settle it so flush returns,
                # and refuse (and count) what is emitted from now on.
                self._closing = True
                self._drop_locked(len(self._pending) + self._in_flight)
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

    def _drop_locked(self, n: int) -> None:
        self._stats["dropped"] += n
        self._settled += n

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait for a full batch, the flush interval, a flush or close; ``None`` to stop."""
        with self._cond:
            deadline: float | None = None
            while True:
                if self._abandon:
                    return None
                if not self._pending:
                    if self._closing:
                        return None
                    deadline = None
                    self._cond.wait()
                    continue
                if (len(self._pending) >= self._batch_size or self._flush_waiters
                        or self._closing):
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._flush_interval_s
                if now >= deadline:
                    break
                self._cond.wait(deadline - now)
            n = min(self._batch_size, len(self._pending))
            batch = [self._pending.popleft() for _ in range(n)]
            self._in_flight = n
            return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Write ``batch``, retrying with backoff until it is written or close gives up."""
        attempt = 0
        while True:
            try:
                self._sink.write(batch)
            except Exception as exc:
                attempt += 1
                delay = min(0.05 * 2 ** (attempt - 1), self._max_backoff_s)
                with self._cond:
                    self._stats["failed_batches"] += 1
                    self._stats["last_error"] = type(exc).__qualname__
                self._warn("write", "audit sink write failed (%s); retrying %d records, "
                           "attempt %d, next in %.2fs", _describe(exc), len(batch), attempt,
                           delay)
                # Only close giving up cuts the backoff short; emits and flushes do not.
                resume = time.monotonic() + delay
                with self._cond:
                    while not self._abandon and (left := resume - time.monotonic()) > 0:
                        self._cond.wait(left)
                    if self._abandon:
                        return  # _run settles the in-flight batch as dropped
                continue
            with self._cond:
                self._stats["written"] += len(batch)
                self._stats["last_error"] = None
                self._settled += len(batch)
                self._in_flight = 0
                self._cond.notify_all()
            if attempt:
                log.warning("audit sink recovered after %d failed attempts", attempt)
            return
