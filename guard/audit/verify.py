"""``guard audit verify``: check every chain and name the first record that breaks it.

For each chain, rows are read in write (row id) order and each row must:

1. hold a record that is a JSON object whose queryable columns are exactly those derived
   from it (a hand-edited column shows up here) - else *edited*;
2. hash to its own ``hash`` (with the chain's algorithm and, if keyed, the key) - else
   *edited*;
3. come right after the row before it: ``seq`` one more, ``prev_hash`` equal to that row's
   ``hash``. A gap in ``seq`` is *deleted*, unless a missing seq turns up later in the chain
   (*reordered*); a row that links to nothing before it, or comes after the chain's end
   marker, or belongs to no chain, is *inserted*.

A chain may start after seq 0 only where a valid purge event (or the manifest of the export
being verified) names that exact start: chain, seq and the ``prev_hash`` the first kept
record points to. Only the first problem of each chain is reported; the report lists every
chain, so one broken chain does not hide the state of the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from guard.audit.chain import CHAIN_END, CHAIN_START, HMAC_SHA256, SHA256, key_id, record_hash
from guard.audit.columns import COLUMNS, row_of
from guard.audit.store import AuditStore, ChainRow

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Problem:
    """The first thing wrong in one chain (or one row outside every chain)."""

    kind: str
    """``edited``, ``deleted``, ``inserted``, ``reordered`` or ``unverifiable``."""
    chain: str | None
    seq: int | None
    row_id: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chain": self.chain, "seq": self.seq, "row_id": self.row_id,
                "message": self.message}


@dataclass
class ChainReport:
    chain: str
    rows: int = 0
    first_seq: int | None = None
    first_prev_hash: str | None = None
    last_seq: int | None = None
    head: str | None = None
    alg: str | None = None
    ended: bool = False
    start: str = "genesis"
    """``genesis`` (seq 0 is here), ``purged`` or ``export`` (an explained later start)."""
    problem: Problem | None = None
    hashes: dict[int, str] = field(default_factory=dict)
    """Hashes at the seqs a manifest asked about."""

    @property
    def state(self) -> str:
        if self.problem is not None:
            return self.problem.kind
        return "ended" if self.ended else "open"

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "rows": self.rows, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "head": self.head, "alg": self.alg,
                "ended": self.ended, "start": self.start, "state": self.state,
                "problem": self.problem.as_dict() if self.problem else None}


@dataclass
class VerifyReport:
    store: str
    chains: list[ChainReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    legacy_rows: int = 0
    """Rows written before this store had chains (accepted, but not verifiable)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        located = [p for p in self.problems if p.row_id is not None]
        if located:
            return min(located, key=lambda p: p.row_id or 0)
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        return {"store": self.store, "ok": self.ok, "rows": self.rows,
                "legacy_rows": self.legacy_rows,
                "first_problem": self.first_problem.as_dict() if self.first_problem else None,
                "problems": [p.as_dict() for p in self.problems],
                "chains": [c.as_dict() for c in self.chains]}


@dataclass(frozen=True)
class Start:
    """An explained start of a chain after seq 0: where it is, who explains it."""

    prev_hash: str | None
    alg: str | None
    source: str
    """``purged`` or ``export``."""
    by_chain: str | None = None
    """The chain of the purge event that explains it (it must verify too)."""


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _ChainCheck:
    """Walks one chain's rows; keeps only what is needed to classify the first problem."""

    def __init__(self, chain: str, key: bytes | None, alg_hint: str | None,
                 watch: Iterable[int] = ()) -> None:
        self.report = ChainReport(chain)
        self.key = key
        self.alg = alg_hint
        self.watch = set(watch)
        self.expected: int | None = None
        self.gap: tuple[int, int, ChainRow] | None = None  # missing seqs, row after them

    def _fail(self, kind: str, row: ChainRow | None, seq: int | None, message: str) -> None:
        if self.report.problem is None:
            self.report.problem = Problem(kind, self.report.chain, seq,
                                          row.id if row else None, message)

    def _hash_ok(self, record: Mapping[str, Any], row: ChainRow, seq: int) -> bool:
        stored = record.get("hash")
        if self.alg is None:
            # No marker or purge entry says how this chain is hashed: the first record does.
            if record_hash(record) == stored:
                self.alg = SHA256
            elif self.key is not None and record_hash(record, self.key) == stored:
                self.alg = HMAC_SHA256
            else:
                self._fail("edited", row, seq, "does not match its hash"
                           + ("" if self.key else " (or the chain is keyed: set "
                              "GUARD_AUDIT_HMAC_KEY)"))
                return False
            return True
        if self.alg == HMAC_SHA256 and self.key is None:
            self._fail("unverifiable", row, seq, "the chain is keyed (HMAC); set "
                       "GUARD_AUDIT_HMAC_KEY to the key it was written with")
            return False
        if record_hash(record, self.key if self.alg == HMAC_SHA256 else None) != stored:
            self._fail("edited", row, seq, "does not match its hash: the record was changed")
            return False
        return True

    def feed(self, row: ChainRow) -> None:
        report = self.report
        report.rows += 1
        seq = row.seq
        if report.problem is not None:
            return
        if self.gap is not None:
            low, high, after = self.gap
            if seq is not None and low <= seq <= high:
                self.gap = None
                self._fail("reordered", after, after.seq,
                           f"seq {after.seq} is stored before seq {seq} (row {after.id} before "
                           f"row {row.id})")
            return
        record = _parse(row.text)
        if record is None:
            self._fail("edited", row, seq, "the stored record is not a JSON object")
            return
        derived = row_of(record)
        changed = [name for name, a, b in zip(COLUMNS, derived, row.columns, strict=True)
                   if a != b]
        if changed:
            self._fail("edited", row, seq, f"column {', '.join(changed)} differs from the record")
            return
        if seq is None:
            self._fail("edited", row, seq, "has no seq")
            return
        if seq == 0 and record.get("event") == CHAIN_START:
            alg = record.get("hash_alg")
            self.alg = alg if alg in (SHA256, HMAC_SHA256) else None
            wanted = record.get("key_id")
            if self.alg == HMAC_SHA256 and self.key is not None and wanted != key_id(self.key):
                self._fail("unverifiable", row, seq, f"the chain is keyed with another key "
                           f"(key id {wanted}); set GUARD_AUDIT_HMAC_KEY to that key")
                return
        if not self._hash_ok(record, row, seq):
            return
        if seq in self.watch:
            report.hashes[seq] = str(record.get("hash"))
        if report.first_seq is None:
            report.first_seq = seq
            report.first_prev_hash = record.get("prev_hash")
            if seq == 0 and record.get("prev_hash") is not None:
                self._fail("inserted", row, seq, "seq 0 must not link to an earlier record")
                return
        elif report.ended:
            self._fail("inserted", row, seq, "stored after the chain's end marker")
            return
        elif seq > (self.expected or 0):
            self.gap = (self.expected or 0, seq - 1, row)
            return
        elif seq < (self.expected or 0):
            self._fail("reordered", row, seq, f"seq {seq} is stored after seq "
                       f"{(self.expected or 0) - 1}")
            return
        elif record.get("prev_hash") != report.head:
            self._fail("edited", row, seq - 1, f"seq {seq} does not link to seq {seq - 1}: "
                       f"seq {seq - 1} was changed and re-hashed, or seq {seq} replaced")
            return
        if record.get("event") == CHAIN_END:
            report.ended = True
        report.head = str(record.get("hash"))
        report.last_seq = seq
        self.expected = seq + 1

    def finish(self) -> ChainReport:
        if self.gap is not None:
            low, high, after = self.gap
            missing = f"seq {low}" if low == high else f"seqs {low}..{high}"
            self._fail("deleted", after, low, f"{missing} missing (the next stored is seq "
                       f"{after.seq}, row {after.id})")
        self.report.alg = self.alg
        return self.report


def _purge_starts(store: AuditStore) -> dict[tuple[str, int], list[Start]]:
    starts: dict[tuple[str, int], list[Start]] = {}
    for row in store.purge_events():
        record = _parse(row.text)
        entries = record.get("chains") if record else None
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            chain, seq = entry.get("chain"), entry.get("first_kept_seq")
            if isinstance(chain, str) and isinstance(seq, int):
                starts.setdefault((chain, seq), []).append(Start(
                    entry.get("kept_prev_hash"), entry.get("hash_alg"), "purged", row.chain))
    return starts


def _manifest_starts(manifest: Mapping[str, Any] | None) -> dict[tuple[str, int], list[Start]]:
    starts: dict[tuple[str, int], list[Start]] = {}
    for entry in (manifest or {}).get("chains", []):
        if isinstance(entry, Mapping) and isinstance(entry.get("first_seq"), int):
            starts.setdefault((str(entry["chain"]), entry["first_seq"]), []).append(Start(
                entry.get("first_prev_hash"), entry.get("hash_alg"), "export"))
    return starts


def verify_store(store: AuditStore, *, key: bytes | None = None,
                 manifest: Mapping[str, Any] | None = None,
                 progress: Progress | None = None) -> VerifyReport:
    """Check every chain in ``store``; see the module docstring for what counts as what.

    ``manifest`` (from ``guard audit export``) explains where the exported chains start
    and names each chain's last record, which must still be there with the same hash.
    """
    report = VerifyReport(store.label)
    starts = _purge_starts(store)
    for where, found in _manifest_starts(manifest).items():
        starts.setdefault(where, []).extend(found)
    heads = {str(e["chain"]): e for e in (manifest or {}).get("chains", [])
             if isinstance(e, Mapping) and isinstance(e.get("last_seq"), int)}

    for chain, _ in store.chains():
        hints = [s.alg for (c, _), found in starts.items() if c == chain for s in found]
        head = heads.get(chain)
        check = _ChainCheck(chain, key, next((h for h in hints if h), None),
                            [head["last_seq"]] if head else [])
        for row in store.chain_rows(chain):
            check.feed(row)
            if progress:
                progress(1)
        report.chains.append(check.finish())
        report.rows += report.chains[-1].rows

    boundary = int(store.meta("unchained_before_id") or 0)
    for row in store.chain_rows(None):
        report.rows += 1
        if progress:
            progress(1)
        if row.id <= boundary:
            report.legacy_rows += 1
        elif not any(p.chain is None for p in report.problems):
            report.problems.append(Problem("inserted", None, None, row.id,
                                           f"row {row.id} belongs to no chain"))

    by_chain = {c.chain: c for c in report.chains}
    for chain_report in report.chains:
        _check_start(chain_report, starts, by_chain)
    for chain, entry in heads.items():
        _check_head(by_chain.get(chain), chain, entry, starts)
    report.problems[:0] = [c.problem for c in report.chains if c.problem is not None]
    for chain, entry in heads.items():
        if chain not in by_chain:
            report.problems.append(Problem(
                "deleted", chain, entry.get("last_seq"), None,
                f"chain {chain} of the manifest is not in the store"))
    return report


def _check_start(chain: ChainReport, starts: dict[tuple[str, int], list[Start]],
                 by_chain: dict[str, ChainReport]) -> None:
    if chain.problem is not None or not chain.first_seq:
        return
    for start in starts.get((chain.chain, chain.first_seq), []):
        explainer = by_chain.get(start.by_chain or "") if start.by_chain else None
        valid = start.source == "export" or (explainer is not None and explainer.problem is None)
        if valid and start.prev_hash == chain.first_prev_hash:
            chain.start = start.source
            return
    missing = "seq 0" if chain.first_seq == 1 else f"seqs 0..{chain.first_seq - 1}"
    chain.problem = Problem("deleted", chain.chain, 0, None,
                            f"{missing} missing and no purge explains it (the chain's first "
                            f"stored record is seq {chain.first_seq})")


def _check_head(chain: ChainReport | None, name: str, entry: Mapping[str, Any],
                starts: dict[tuple[str, int], list[Start]]) -> None:
    if chain is None or chain.problem is not None:
        return
    seq, wanted = int(entry["last_seq"]), entry.get("last_hash")
    if seq in chain.hashes:
        if chain.hashes[seq] != wanted:
            chain.problem = Problem("edited", name, seq, None,
                                    f"seq {seq} differs from the manifest's head")
        return
    if chain.first_seq is not None and chain.first_seq > seq and chain.start == "purged":
        return  # purged since the export
    chain.problem = Problem("deleted", name, seq, None,
                            f"seq {seq}, the manifest's last record of this chain, is missing "
                            f"(the store ends at seq {chain.last_seq})")
