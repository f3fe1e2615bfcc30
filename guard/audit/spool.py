"""The spool: a local append-only file that holds batches while the store is down or slow.

Layout, in one directory per store::

    <chain>.spool    JSON lines (canonical JSON, already chained), appended and fsynced
    <chain>.offset   how many bytes of the spool are known to be in the store

Each writer appends only to its own spool (named after its chain) and holds an exclusive
``flock`` on it while it lives. A writer starting later takes over every spool whose lock
it can get - left by a process that crashed or could not reach the store before it exited -
and replays it. Replay is at-least-once from the offset; the stores ignore a record they
already have (unique request ids and ``(chain, seq)``), so the result is exactly-once.

When a spool has been replayed completely it is deleted, spool first and offset second:
an offset left without its spool is stale and removed at the next start, never applied to
a new spool.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from guard.audit.sinks import canonical_json

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no take-over of other processes' spools
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("guard.audit")

SPOOL_ENV = "GUARD_AUDIT_SPOOL"
"""A directory under which every store gets its own spool directory."""


def spool_dir_for(kind: str, identity: str, default: Path | None = None) -> Path:
    """Where the spool of one store lives.

    ``$GUARD_AUDIT_SPOOL/<kind>-<hash of identity>`` when the variable is set, else
    ``default``, else ``$XDG_STATE_HOME/guard/audit-spool/<kind>-<hash>`` (``~/.local/state``).
    """
    name = f"{kind}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"
    base = os.environ.get(SPOOL_ENV)
    if base:
        return Path(base).expanduser().absolute() / name
    if default is not None:
        return default
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "guard" / "audit-spool" / name


def _lock(f: IO[bytes]) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class SpoolFile:
    """One chain's spool file and its offset; used from the writer thread only."""

    def __init__(self, path: Path, handle: IO[bytes], *, own: bool) -> None:
        self.path = path
        self.offset_path = path.with_suffix(".offset")
        self.own = own
        self._handle = handle  # open, locked: the lock lives as long as the handle
        self.offset = self._read_offset()
        self.size = os.fstat(handle.fileno()).st_size
        if self.offset > self.size:
            self.offset = 0  # a spool replaced under an old offset: replay it all

    @classmethod
    def create(cls, directory: Path, name: str) -> SpoolFile:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.spool"
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(".offset").unlink()  # stale: its spool was deleted
        handle = open(path, "ab+")  # noqa: SIM115 - kept open to hold the lock
        if not _lock(handle):
            handle.close()
            raise OSError(f"spool {path} is locked by another process")
        return cls(path, handle, own=True)

    @classmethod
    def adopt(cls, path: Path) -> SpoolFile | None:
        """Take over ``path`` if no living process holds it; ``None`` otherwise."""
        try:
            handle = open(path, "ab+")  # noqa: SIM115 - kept open to hold the lock
        except OSError:
            return None
        if not _lock(handle):
            handle.close()
            return None
        return cls(path, handle, own=False)

    @property
    def pending_bytes(self) -> int:
        return self.size - self.offset

    def _read_offset(self) -> int:
        try:
            return int(self.offset_path.read_text("ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append ``records`` durably (fsync) or not at all (truncated back on error)."""
        data = "".join(canonical_json(r) + "\n" for r in records).encode("utf-8")
        start = self.size
        try:
            self._handle.seek(0, os.SEEK_END)
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                self._handle.truncate(start)
            raise
        self.size = start + len(data)

    def read(self, max_records: int) -> tuple[list[dict[str, Any]], int]:
        """Up to ``max_records`` records from the offset, and the offset after them.

        A last line without its newline (a crash in the middle of an append) ends the
        spool: it was never reported as stored, and the rest of it is gone.
        """
        records: list[dict[str, Any]] = []
        self._handle.seek(self.offset)
        position = self.offset
        while len(records) < max_records and position < self.size:
            line = self._handle.readline()
            if not line.endswith(b"\n"):
                log.warning("audit spool %s ends with a partial line; it is skipped", self.path)
                position = self.size
                break
            position += len(line)
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict):
                records.append(record)
            else:
                log.warning("audit spool %s: skipping an unreadable line at byte %d",
                            self.path, position - len(line))
        return records, position

    def commit(self, offset: int) -> None:
        """Record that everything before ``offset`` is in the store."""
        self.offset = offset
        if offset >= self.size:
            self.remove()
            return
        tmp = self.offset_path.with_suffix(".offset.tmp")
        tmp.write_text(str(offset), "ascii")
        os.replace(tmp, self.offset_path)

    def remove(self) -> None:
        """Delete the replayed spool (spool before offset, see the module docstring)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.offset_path.unlink()
        self.close()
        self.size = self.offset = 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()


class Spool:
    """The spool files of one writer: others' (taken over) first, then its own.

    ``pending_records`` counts the writer's own records waiting in its spool (markers
    excluded), the number that completes ``emitted == written + dropped + queued + ...``.
    """

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.own: SpoolFile | None = None
        self.others: list[SpoolFile] = []
        self.pending_records = 0

    def adopt_orphans(self) -> int:
        """Take over spools that no living writer holds; returns how many bytes wait."""
        if not self.directory.is_dir():
            return 0
        for offset in self.directory.glob("*.offset"):
            if not offset.with_suffix(".spool").exists():
                with contextlib.suppress(OSError):
                    offset.unlink()
        waiting = 0
        for path in sorted(self.directory.glob("*.spool")):
            if path.stem == self.name:
                continue
            spool = SpoolFile.adopt(path)
            if spool is None:
                continue
            if spool.pending_bytes == 0:
                spool.remove()
                continue
            self.others.append(spool)
            waiting += spool.pending_bytes
        return waiting

    @property
    def own_pending(self) -> bool:
        return self.own is not None and self.own.pending_bytes > 0

    @property
    def has_pending(self) -> bool:
        return self.own_pending or bool(self.others)

    @property
    def pending_bytes(self) -> int:
        own = self.own.pending_bytes if self.own is not None else 0
        return own + sum(s.pending_bytes for s in self.others)

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        if self.own is None:
            self.own = SpoolFile.create(self.directory, self.name)
        self.own.append(records)

    def next_file(self) -> SpoolFile | None:
        """The spool to replay next: the oldest taken-over one, else the writer's own."""
        while self.others and self.others[0].pending_bytes == 0:
            self.others.pop(0).remove()
        if self.others:
            return self.others[0]
        return self.own if self.own_pending else None

    def done(self, spool: SpoolFile) -> None:
        """Forget a spool that has been replayed completely (its files are gone)."""
        if spool is self.own:
            self.own = None
        elif spool in self.others:
            self.others.remove(spool)

    def close(self) -> None:
        for spool in [*self.others, *([self.own] if self.own else [])]:
            spool.close()
