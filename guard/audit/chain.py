"""Hash chains: what makes an edited, deleted, inserted or reordered record visible.

Each writer instance keeps its own chain, so several processes writing one store need no
shared lock. A chained record carries four fields::

    chain      the writer instance's chain id (16 hex digits, new at every start)
    seq        its position in the chain: 0, 1, 2, ...
    prev_hash  the ``hash`` of the record before it in the chain (``None`` for seq 0)
    hash       SHA-256 of canonical_json(record without "hash"), hex
               (HMAC-SHA-256 with the key in GUARD_AUDIT_HMAC_KEY, when it is set)

``chain``, ``seq`` and ``prev_hash`` are inside what is hashed, so a record can be neither
changed nor moved without breaking its own hash or its successor's link.

A chain starts anew with every writer (so at every process start) rather than continuing the
last one: continuing would need the previous head read back from a store that may be down,
and two processes restarting together would fork it. A new chain per start is simple and
each one verifies on its own. In stores (SQLite, PostgreSQL, JSON lines) seq 0 is a
``guard.audit.chain_start`` marker saying how the chain is hashed, and a clean shutdown
appends ``guard.audit.chain_end``, so records cut from the end of a finished chain are
noticed too. A purge is itself a chained ``guard.audit.purge`` event (see ``purge``).

Without a key anyone with write access can forge a whole new, valid chain; with a key
they cannot. The key is never stored: records name it by ``key_id``, an HMAC of a fixed
label, so ``verify`` can tell "wrong key" from "tampered".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from typing import Any

from guard.audit.sinks import canonical_json

CHAIN_START = "guard.audit.chain_start"
CHAIN_END = "guard.audit.chain_end"
PURGE = "guard.audit.purge"
MARKERS = frozenset({CHAIN_START, CHAIN_END})
"""Events the writer adds to its own chain; they are not emitted records."""
CONTROL_EVENTS = frozenset({CHAIN_START, CHAIN_END, PURGE})
"""Events about the trail itself, not about a request."""

HMAC_KEY_ENV = "GUARD_AUDIT_HMAC_KEY"
SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"


def hmac_key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key from ``GUARD_AUDIT_HMAC_KEY`` (UTF-8 bytes of the value), or ``None``."""
    value = (os.environ if env is None else env).get(HMAC_KEY_ENV, "")
    return value.encode("utf-8") if value else None


def key_id(key: bytes) -> str:
    """A name for ``key`` that reveals nothing about it (an HMAC of a fixed label)."""
    return hmac.new(key, b"guard-audit-key-id", hashlib.sha256).hexdigest()[:16]


def record_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    """The hash of ``record`` as the chain defines it (every field but ``hash``).

    >>> record_hash({"seq": 0, "hash": "ignored"}) == record_hash({"seq": 0})
    True
    """
    body = {k: v for k, v in record.items() if k != "hash"}
    data = canonical_json(body).encode("utf-8")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def now_ts() -> str:
    """Now, in the records' timestamp format (UTC, milliseconds, ``Z``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Chain:
    """Links records into one chain: sets ``chain``, ``seq``, ``prev_hash`` and ``hash``.

    Not thread-safe on purpose: one chain belongs to one writer thread.

    >>> chain = Chain(chain_id="c0")
    >>> first = chain.link({"event": "guard.request"})
    >>> second = chain.link({"event": "guard.request"})
    >>> (second["seq"], second["prev_hash"] == first["hash"])
    (1, True)
    """

    def __init__(self, key: bytes | None = None, *, chain_id: str | None = None) -> None:
        self.id = chain_id or secrets.token_hex(8)
        self.key = key
        self.seq = 0
        """The seq the next linked record gets."""
        self.head: str | None = None
        """The hash of the last linked record."""

    @property
    def alg(self) -> str:
        return HMAC_SHA256 if self.key is not None else SHA256

    @property
    def key_id(self) -> str | None:
        return key_id(self.key) if self.key is not None else None

    @property
    def started(self) -> bool:
        return self.seq > 0

    def link(self, record: dict[str, Any]) -> dict[str, Any]:
        """Make ``record`` the chain's next record (in place) and return it."""
        record.pop("hash", None)
        record["chain"] = self.id
        record["seq"] = self.seq
        record["prev_hash"] = self.head
        record["hash"] = digest = record_hash(record, self.key)
        self.head = digest
        self.seq += 1
        return record

    def start_marker(self, **info: Any) -> dict[str, Any]:
        """The unlinked ``chain_start`` record: how this chain is hashed, and by whom."""
        return {"event": CHAIN_START, "ts": now_ts(), "hash_alg": self.alg,
                "key_id": self.key_id, "pid": os.getpid(), **info}

    def end_marker(self) -> dict[str, Any]:
        """The unlinked ``chain_end`` record; ``records`` counts those before it."""
        return {"event": CHAIN_END, "ts": now_ts(), "records": self.seq}
