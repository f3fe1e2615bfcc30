"""Where the proxy keeps batch maps between upload and results: one directory.

- ``<input file id>.maps``: the batch's pseudonym maps, encrypted (``guard.batch.crypto``),
  owner-only (0600) in an owner-only directory (0700);
- ``<output or error file id>.link``: plain JSON ``{input_file, batch_id, kind}`` — ids only,
  recorded from ``/v1/batches`` answers passing through, so the results of a batch find the
  maps of its input file.

The directory is ``GUARD_BATCH_DIR`` (default ``~/.local/state/guard/batch-maps``); several
proxy processes can share it. Disk work and key derivation run off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from guard.batch.maps import BatchMaps, write_private
from guard.errors import ConfigError

DIR_ENV = "GUARD_BATCH_DIR"
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")


def default_dir(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(DIR_ENV):
        return Path(env[DIR_ENV]).expanduser()
    state = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "guard" / "batch-maps"


@dataclass(frozen=True)
class Link:
    input_file: str
    batch_id: str | None
    kind: str
    """``output`` or ``error``: which result file of the batch this is."""


class MapsStore:
    def __init__(self, directory: Path, key: str) -> None:
        self.directory = directory
        self._key = key
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"{DIR_ENV}={directory} cannot be created ({exc.strerror}).") from None

    def __repr__(self) -> str:
        return f"<MapsStore {self.directory}>"

    def _path(self, file_id: str, suffix: str) -> Path:
        if not _FILE_ID.fullmatch(file_id):
            raise ValueError("not a file id")
        return self.directory / f"{file_id}{suffix}"

    @staticmethod
    def valid_id(file_id: str) -> bool:
        return _FILE_ID.fullmatch(file_id) is not None

    async def save(self, file_id: str, maps: BatchMaps) -> None:
        await asyncio.to_thread(maps.save, self._path(file_id, ".maps"), self._key)

    def has_maps(self, file_id: str) -> bool:
        return self.valid_id(file_id) and self._path(file_id, ".maps").is_file()

    async def load(self, file_id: str) -> BatchMaps:
        return await asyncio.to_thread(BatchMaps.load, self._path(file_id, ".maps"), self._key)

    def link(self, result_file: str, input_file: str, batch_id: str | None, kind: str) -> None:
        if not (self.valid_id(result_file) and self.has_maps(input_file)):
            return
        record = {"input_file": input_file, "batch_id": batch_id, "kind": kind}
        path = self._path(result_file, ".link")
        if not path.exists():
            write_private(path, json.dumps(record).encode())

    def linked(self, result_file: str) -> Link | None:
        if not self.valid_id(result_file):
            return None
        try:
            value = json.loads(self._path(result_file, ".link").read_bytes())
            return Link(str(value["input_file"]), value.get("batch_id"), str(value["kind"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
