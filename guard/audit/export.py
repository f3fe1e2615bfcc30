"""``guard audit export``: a time range as JSON lines or CSV, with a manifest for an auditor.

The range is taken per chain as one contiguous run of rows - from the chain's first record
stamped in the range to its last - so an exported JSON-lines file verifies on its own
(``guard audit verify --sink jsonl://FILE --manifest FILE.manifest.json``): the manifest
names where each chain starts in the file (seq and the ``prev_hash`` it points to), its
last record (the chain head) and the file's SHA-256. Trail events inside the range
(chain markers, purges) are exported too; the CSV has one row per record and is for
reading, not for verifying.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from guard.audit.chain import CONTROL_EVENTS, now_ts
from guard.audit.columns import flagged_categories, rule_hits
from guard.audit.sinks import canonical_json
from guard.audit.store import NOT_MARKER, AuditStore, StoredRecord, parse_record

MANIFEST_FORMAT = "guard-audit-export/1"

CSV_FIELDS = (
    "ts", "event", "request_id", "principal", "route", "model", "policy_name", "policy_sha256",
    "mode", "decision", "status", "code", "input_entities", "output_entities",
    "moderation_categories", "output_rules", "stream", "truncated", "prompt_tokens",
    "completion_tokens", "cost_usd", "latency_total_ms", "error", "chain", "seq", "prev_hash",
    "hash",
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """One flat CSV row for ``record`` (counts as ``PERSON=2;EMAIL_ADDRESS=1``)."""
    policy = _dict(record.get("policy"))
    usage = _dict(record.get("usage"))
    latency = _dict(record.get("latency_ms"))

    def counts(value: Any) -> str:
        return ";".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else ""

    return {
        "ts": record.get("ts"), "event": record.get("event"),
        "request_id": record.get("request_id"), "principal": record.get("principal"),
        "route": record.get("route"), "model": record.get("model"),
        "policy_name": policy.get("name"), "policy_sha256": policy.get("sha256"),
        "mode": record.get("mode"), "decision": record.get("decision"),
        "status": record.get("status"), "code": record.get("code"),
        "input_entities": counts(record.get("input_entities")),
        "output_entities": counts(record.get("output_entities")),
        "moderation_categories": ";".join(flagged_categories(record)),
        "output_rules": ";".join(f"{i}={a}" for i, a in rule_hits(record)),
        "stream": record.get("stream"), "truncated": record.get("truncated"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cost_usd": record.get("cost_usd"), "latency_total_ms": latency.get("total"),
        "error": record.get("error"), "chain": record.get("chain"), "seq": record.get("seq"),
        "prev_hash": record.get("prev_hash"), "hash": record.get("hash"),
    }


def write_csv(out: TextIO, records: Iterator[dict[str, Any]]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    n = 0
    for record in records:
        writer.writerow(csv_row(record))
        n += 1
    return n


def export_rows(store: AuditStore, since: str | None, until: str | None) -> Iterator[StoredRecord]:
    """The rows of the range, whole runs per chain, in write order (see module docstring)."""
    terms, params = ["1 = 1"], []
    if since:
        terms.append("ts >= ?")
        params.append(since)
    if until:
        terms.append("ts < ?")
        params.append(until)
    where = " AND ".join(terms)
    runs = store.fetchall(
        f"SELECT chain, MIN(id), MAX(id) FROM guard_requests WHERE {where} "
        f"AND chain IS NOT NULL AND {NOT_MARKER} GROUP BY chain", params)
    selects = ["(chain IS NULL AND " + where + ")"]
    values: list[Any] = list(params)
    for chain, low, high in runs:
        selects.append("(chain = ? AND id BETWEEN ? AND ?)")
        values += [chain, low, high]
    last = 0
    # Chains are few (one per writer start); one OR per chain keeps this a single scan.
    condition = " OR ".join(selects)
    while True:
        rows = store.fetchall(
            f"SELECT id, record FROM guard_requests WHERE ({condition}) AND id > ? "
            "ORDER BY id LIMIT 1000", [*values, last])
        for row_id, text in rows:
            yield StoredRecord(int(row_id), parse_record(text))
        if len(rows) < 1000:
            return
        last = int(rows[-1][0])


class _Hashing:
    """A text file wrapper that hashes exactly the UTF-8 bytes written."""

    def __init__(self, f: TextIO) -> None:
        self._f = f
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self.digest.update(data)
        self.size += len(data)
        return self._f.write(text)


@dataclass
class ExportResult:
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


class _Heads:
    def __init__(self) -> None:
        self.chains: dict[str, dict[str, Any]] = {}
        self.records = 0
        self.requests = 0

    def add(self, record: dict[str, Any]) -> None:
        self.records += 1
        if record.get("event") not in CONTROL_EVENTS:
            self.requests += 1
        chain = record.get("chain")
        if not isinstance(chain, str):
            return
        entry = self.chains.get(chain)
        if entry is None:
            entry = self.chains[chain] = {
                "chain": chain, "first_seq": record.get("seq"),
                "first_prev_hash": record.get("prev_hash"), "records": 0}
        if record.get("hash_alg"):
            entry["hash_alg"] = record["hash_alg"]
        entry["records"] += 1
        entry["last_seq"] = record.get("seq")
        entry["last_hash"] = record.get("hash")


def export(store: AuditStore, out: Path, *, fmt: str = "jsonl", since: str | None = None,
           until: str | None = None, progress: Callable[[int], None] | None = None
           ) -> ExportResult:
    """Write the range to ``out`` and ``out`` + ``.manifest.json``; returns the manifest."""
    heads = _Heads()
    with open(out, "w", encoding="utf-8", newline="") as f:
        sink = _Hashing(f)

        def tracked() -> Iterator[dict[str, Any]]:
            for row in export_rows(store, since, until):
                heads.add(row.record)
                if progress:
                    progress(1)
                yield row.record

        if fmt == "csv":
            write_csv(sink, tracked())  # type: ignore[arg-type]
        else:
            for record in tracked():
                sink.write(canonical_json(record) + "\n")
    digest, size = sink.digest, sink.size
    manifest = {
        "format": MANIFEST_FORMAT, "created": now_ts(), "source": store.label,
        "file": out.name, "file_format": fmt, "sha256": digest.hexdigest(), "bytes": size,
        "since": since, "until": until, "records": heads.records, "requests": heads.requests,
        "chains": sorted(heads.chains.values(), key=lambda e: e["chain"]),
    }
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")
    return ExportResult(out, manifest_path, manifest)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
