"""The queryable columns of a stored record, derived from the record alone.

Both stores (SQLite, PostgreSQL) keep the whole record as canonical JSON - the source of
truth the hash chain covers - plus these copies of the fields a reviewer filters and sums
on. Because the columns are a pure function of the record, ``verify`` recomputes them and
so notices a hand-edited column as surely as an edited record.

Lists and maps a reviewer filters on (entity types, moderation categories, rule hits) are
kept as tag strings ``|A|B|`` / ``|A=2|B=1|``: one portable ``instr``/``strpos`` test in
either database, no JSON functions that differ between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from guard.audit.sinks import canonical_json

COLUMNS = (
    "event", "request_id", "chain", "seq", "ts", "principal", "route", "model", "policy_name",
    "policy_sha256", "mode", "decision", "status", "code", "stream", "cost_usd",
    "prompt_tokens", "completion_tokens", "latency_ms", "entities", "categories", "rules",
    "prev_hash", "hash", "record",
)
"""Every column but the store's own row ``id``, in :func:`row_of` order."""

COLUMN_TYPES: dict[str, str] = {
    "seq": "int", "stream": "int", "cost_usd": "real", "prompt_tokens": "int",
    "completion_tokens": "int", "latency_ms": "real", "record": "text not null",
}
"""Column kinds other than text (each store maps them to its own SQL types)."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None  # bool is an int: True -> 1


def _real(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _field(record: Mapping[str, Any], outer: str, inner: str) -> Any:
    nested = record.get(outer)
    return nested.get(inner) if isinstance(nested, Mapping) else None


def _tag(name: object) -> str:
    # The separators must not occur inside a tag, or a filter could match across two.
    return str(name).replace("|", "_").replace("=", "_")


def _tags(names: Iterable[str]) -> str | None:
    unique = sorted(set(names))
    return "|" + "|".join(unique) + "|" if unique else None


def entity_tags(record: Mapping[str, Any]) -> str | None:
    """``|EMAIL_ADDRESS=1|PERSON=2|`` from ``input_entities`` (what was sent)."""
    entities = record.get("input_entities")
    if not isinstance(entities, Mapping):
        return None
    return _tags(f"{_tag(k)}={n if isinstance(n, int) else 0}" for k, n in entities.items())


def flagged_categories(record: Mapping[str, Any]) -> list[str]:
    """Moderation categories flagged on the input or the output, each once."""
    moderation = record.get("moderation")
    found: list[str] = []
    if isinstance(moderation, Mapping):
        for side in ("input", "output"):
            verdict = moderation.get(side)
            flagged = verdict.get("flagged") if isinstance(verdict, Mapping) else None
            if isinstance(flagged, list):
                found += [str(c) for c in flagged if str(c) not in found]
    return found


def rule_hits(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(rule id, action)`` for every rule that matched: input rules, then output rules."""
    hits: list[tuple[str, str]] = []
    for key in ("input_rules", "output_rules"):
        rules = record.get(key)
        if isinstance(rules, list):
            hits += [(str(r.get("id")), str(r.get("action"))) for r in rules
                     if isinstance(r, Mapping)]
    return hits


def row_of(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """The column values for ``record``, in :data:`COLUMNS` order.

    A field of an unexpected type becomes NULL in its column instead of failing the batch;
    it is still in ``record``.
    """
    categories = flagged_categories(record)
    hits = rule_hits(record)
    return (
        _text(record.get("event")),
        _text(record.get("request_id")),
        _text(record.get("chain")),
        _int(record.get("seq")),
        _text(record.get("ts")),
        _text(record.get("principal")),
        _text(record.get("route")),
        _text(record.get("model")),
        _text(_field(record, "policy", "name")),
        _text(_field(record, "policy", "sha256")),
        _text(record.get("mode")),
        _text(record.get("decision")),
        _text(record.get("status")),
        _text(record.get("code")),
        _int(record.get("stream")),
        _real(record.get("cost_usd")),
        _int(_field(record, "usage", "prompt_tokens")),
        _int(_field(record, "usage", "completion_tokens")),
        _real(_field(record, "latency_ms", "total")),
        entity_tags(record),
        _tags(_tag(c) for c in categories),
        _tags(f"{_tag(i)}={_tag(a)}" for i, a in hits),
        _text(record.get("prev_hash")),
        _text(record.get("hash")),
        canonical_json(record),
    )


def parse_tags(value: str | None) -> dict[str, str]:
    """``|A=2|B|`` -> ``{"A": "2", "B": ""}``."""
    if not value:
        return {}
    out: dict[str, str] = {}
    for part in value.strip("|").split("|"):
        name, _, rest = part.partition("=")
        out[name] = rest
    return out
