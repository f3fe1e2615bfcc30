"""The pseudonym maps of one batch, kept (encrypted) until its results come back.

Plain data: per ``custom_id`` the input line number, the url, the placeholder → value map,
and — for a line that was withheld — the code and reason. ``repr`` never shows values.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.batch.crypto import MapsFileError, decrypt, encrypt

FORMAT_VERSION = 1


def new_ref() -> str:
    """Guard's own id for one batch file (in the maps, the report and every audit record)."""
    return f"gb_{secrets.token_hex(8)}"


@dataclass(frozen=True)
class LineMaps:
    line: int
    url: str
    placeholders: dict[str, str] = field(default_factory=dict, repr=False)
    withheld: tuple[str, str] | None = None
    """``(code, reason)`` when the request was not sent upstream."""


@dataclass
class BatchMaps:
    ref: str
    policy: dict[str, str]
    lines: dict[str, LineMaps] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"<BatchMaps {self.ref} {len(self.lines)} line(s)>"

    def to_json(self) -> bytes:
        return json.dumps({
            "version": FORMAT_VERSION, "ref": self.ref, "policy": self.policy,
            "lines": {cid: {"line": m.line, "url": m.url, "placeholders": m.placeholders,
                            "withheld": list(m.withheld) if m.withheld else None}
                      for cid, m in self.lines.items()},
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "the maps file") -> BatchMaps:
        try:
            value: Any = json.loads(data)
            if value.get("version") != FORMAT_VERSION:
                raise MapsFileError(f"{source} has format version {value.get('version')!r}; "
                                    f"this Guard reads version {FORMAT_VERSION}.")
            lines = {cid: LineMaps(int(m["line"]), str(m["url"]), dict(m["placeholders"]),
                                   tuple(m["withheld"]) if m.get("withheld") else None)
                     for cid, m in value["lines"].items()}
            return cls(str(value["ref"]), dict(value["policy"]), lines)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MapsFileError(f"{source} decrypted but its content is damaged.") from None

    def save(self, path: Path, key: str) -> None:
        """Encrypt and write atomically, readable by the owner only (0600)."""
        write_private(path, encrypt(self.to_json(), key))

    @classmethod
    def load(cls, path: Path, key: str) -> BatchMaps:
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MapsFileError(f"{source} could not be read ({exc.strerror or exc}).") from None
        return cls.from_json(decrypt(data, key, source=source), source=source)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a 0600 temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
