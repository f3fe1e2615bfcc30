"""``guard audit purge --before DATE``: retention that leaves an explained, verifiable gap.

Each chain loses a *prefix*: everything before its first record stamped at or after the
cut-off (chain markers do not count: they carry the time the writer started or stopped, not
the time of a call). (Within a chain, records are in write order, and a long stream may be written after
a shorter call that started later, so "every record older than the date" could punch holes
in the middle of a chain; a prefix never does.) Rows outside every chain (from before the
store had chains) older than the date are deleted too.

The deletion and a new three-record chain - ``chain_start``, a ``guard.audit.purge`` event,
``chain_end`` - are one transaction. The purge event names, for every chain that now starts
after seq 0 (cut now, or by an earlier purge whose event this one may delete), the first
kept seq and the ``prev_hash`` it points to, with the chain's hash algorithm; that is what
lets ``verify`` accept the gap, and only that gap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from guard.audit.chain import CHAIN_START, PURGE, Chain, now_ts
from guard.audit.columns import COLUMNS, row_of
from guard.audit.store import NOT_MARKER, AuditStore


@dataclass
class PurgeResult:
    before: str
    deleted: int = 0
    chains: list[dict[str, Any]] = field(default_factory=list)
    unchained_deleted: int = 0
    event_chain: str = ""


def _insert(store: AuditStore, records: list[dict[str, Any]]) -> None:
    placeholders = ", ".join("?" for _ in COLUMNS)
    for record in records:
        store.conn.execute(store.sql(
            f"INSERT INTO guard_requests ({', '.join(COLUMNS)}) VALUES ({placeholders})"),
            row_of(record))


def _known_algs(store: AuditStore) -> dict[str, tuple[Any, Any]]:
    """chain -> (hash_alg, key_id), from chain starts and earlier purge events."""
    known: dict[str, tuple[Any, Any]] = {}
    for _, text in store.fetchall(
            "SELECT id, record FROM guard_requests WHERE event = ? ORDER BY id", (PURGE,)):
        for entry in json.loads(text).get("chains", []):
            known[entry["chain"]] = (entry.get("hash_alg"), entry.get("key_id"))
    for chain, text in store.fetchall(
            "SELECT chain, record FROM guard_requests WHERE event = ? AND seq = 0", (CHAIN_START,)):
        record = json.loads(text)
        known[chain] = (record.get("hash_alg"), record.get("key_id"))
    return known


def purge(store: AuditStore, before: str, *, key: bytes | None = None) -> PurgeResult:
    """Delete each chain's prefix older than ``before`` and record why (one transaction)."""
    result = PurgeResult(before)
    with store.transaction():
        algs = _known_algs(store)
        cuts = dict(store.fetchall(
            "SELECT chain, MIN(id) FROM guard_requests WHERE chain IS NOT NULL AND "
            f"(ts IS NULL OR ts >= ?) AND {NOT_MARKER} GROUP BY chain", (before,)))
        for chain, _ in store.chains():
            cut = cuts.get(chain)
            bound = "" if cut is None else " AND id < ?"
            params: tuple[Any, ...] = (chain,) if cut is None else (chain, cut)
            row = store.fetchone(
                f"SELECT COUNT(*), SUM(CASE WHEN {NOT_MARKER} THEN 1 ELSE 0 END) "
                f"FROM guard_requests WHERE chain = ?{bound}", params)
            # Only markers before the cut (a chain start): nothing worth deleting.
            deleted = int(row[0]) if row and row[1] else 0
            if deleted:
                store.conn.execute(store.sql(f"DELETE FROM guard_requests WHERE chain = ?{bound}"),
                                   params)
            first = store.fetchone(
                "SELECT seq, prev_hash FROM guard_requests WHERE chain = ? ORDER BY id LIMIT 1",
                (chain,))
            if not deleted and (first is None or not first[0]):
                continue  # untouched, and starts at seq 0: nothing to explain
            alg, key_name = algs.get(chain, (None, None))
            result.chains.append({
                "chain": chain, "deleted": deleted,
                "first_kept_seq": first[0] if first else None,
                "kept_prev_hash": first[1] if first else None,
                "hash_alg": alg, "key_id": key_name,
            })
            result.deleted += deleted
        unchained = store.fetchone(
            "SELECT COUNT(*) FROM guard_requests WHERE chain IS NULL AND ts < ?", (before,))
        result.unchained_deleted = int(unchained[0]) if unchained else 0
        if result.unchained_deleted:
            store.conn.execute(store.sql(
                "DELETE FROM guard_requests WHERE chain IS NULL AND ts < ?"), (before,))
        purger = Chain(key)
        result.event_chain = purger.id
        event = {"event": PURGE, "ts": now_ts(), "before": before,
                 "deleted": result.deleted + result.unchained_deleted,
                 "unchained_deleted": result.unchained_deleted, "chains": result.chains}
        _insert(store, [purger.link(purger.start_marker(writer="guard audit purge")),
                        purger.link(event), purger.link(purger.end_marker())])
    return result
