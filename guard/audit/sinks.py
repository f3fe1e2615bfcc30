"""Where audit records end up: the sink protocol and the file-less sinks.

A sink is one extension point with two methods. It is called only from the audit writer's
background thread, with batches, so an implementation may block on I/O and needs no locking
of its own. Records reach a sink already made JSON-safe by :func:`to_jsonable`; every sink
renders them with :func:`canonical_json`, so a record has one byte form everywhere (the hash
chain will rely on it).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import math
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

log = logging.getLogger("guard.audit")


class AuditSink(Protocol):
    """Destination of audit records; one method to write, one to let go of resources.

    ``write`` receives a batch of JSON-safe records and is called only from the writer
    thread; raising means "nothing of this batch can be trusted to be stored", and the
    writer will retry the whole batch later, so a write should be all-or-nothing or
    idempotent. ``close`` is called once, from the same thread, after the last write.
    """

    def write(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...


def canonical_json(record: Mapping[str, Any]) -> str:
    """The one serialisation of a record: sorted keys, no spaces, UTF-8 kept as is.

    >>> canonical_json({"b": 1, "a": "é"})
    '{"a":"é","b":1}'
    """
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` made only of dict/list/str/int/float/bool/None.

    Runs in the writer thread, not on the request path. A value JSON cannot represent is
    kept as text rather than failing the batch: a record the sink can never write would
    otherwise be retried forever and stall the trail behind it.

    Strings lose what no store can hold (NUL, which PostgreSQL refuses, and lone
    surrogates, which UTF-8 cannot encode): both become U+FFFD, so one odd value cannot
    make a batch fail forever.

    >>> to_jsonable({"n": (1, 2), 3: float("nan"), "s": "a\\x00b"})
    {'n': [1, 2], '3': 'nan', 's': 'a\ufffdb'}
    """
    if isinstance(value, str):
        return _storable(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {_storable(str(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    return str(value)


def _storable(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


class StdoutSink:
    """JSON lines on standard output, for containers whose log collector is the audit store.

    ``sys.stdout`` is looked up at every write so that redirection (and pytest's ``capsys``)
    done after start-up is honoured.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        stream = self._stream or sys.stdout
        stream.write("".join(canonical_json(r) + "\n" for r in records))
        stream.flush()

    def close(self) -> None:
        """Nothing to release: the stream belongs to the process."""


class JsonlSink:
    """Appends one JSON line per record to a file.

    The file is opened when the sink is built so that a bad path fails at start-up, not on
    the first request; a write after :meth:`close` opens it again. A lock keeps batches
    whole if a sink is shared between writers. After a failed write the next write starts
    on a fresh line, so a half-written line cannot glue itself to a good one; the records
    of a failed batch may then appear twice (at-least-once). Use SQLite when duplicates
    matter.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file: TextIO | None = self._open()
        self._after_error = False

    def _open(self) -> TextIO:
        # newline="" so that "\n" is written as is on every platform.
        return open(self.path, "a", encoding="utf-8", newline="")

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        data = "".join(canonical_json(r) + "\n" for r in records)
        with self._lock:
            if self._file is None:
                self._file = self._open()
            if self._after_error:
                data = "\n" + data
            try:
                self._file.write(data)
                self._file.flush()
            except BaseException:
                self._after_error = True
                raise
            self._after_error = False

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class MemorySink:
    """Keeps records in memory: for tests, the app's and ours.

    ``open_sink("memory://name")`` returns the same instance for the same name within a
    process, so a test can configure Guard with a URL and read the records back with
    :func:`guard.audit.read_records`. Records stay readable after :meth:`close`.

    >>> sink = MemorySink()
    >>> sink.write([{"request_id": "r1"}])
    >>> sink.records
    [{'request_id': 'r1'}]
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    @property
    def records(self) -> list[dict[str, Any]]:
        """A snapshot of the records written so far, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self._records.extend(dict(r) for r in records)

    def close(self) -> None:
        """Nothing to release; the records stay readable."""


_memory_lock = threading.Lock()
_memory_sinks: dict[str, MemorySink] = {}


def named_memory_sink(name: str) -> MemorySink:
    """The process-wide :class:`MemorySink` called ``name``, created on first use."""
    with _memory_lock:
        sink = _memory_sinks.get(name)
        if sink is None:
            sink = _memory_sinks[name] = MemorySink()
        return sink


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSON-lines audit file, oldest first.

    Lines that are not a JSON object (a write cut short by a crash or a full disk) are
    skipped with a warning naming the line number only, never its text.
    """
    # Iterating a text file splits on line ends only, not on U+2028 as str.splitlines does.
    with open(path, encoding="utf-8", newline="") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                yield record
            else:
                log.warning("skipping unreadable audit line %s:%d", path, number)
