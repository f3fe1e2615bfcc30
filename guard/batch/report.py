"""Per-line report rows and the summary of a batch run — counts and codes, never content."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LineReport:
    """One row of the report file (JSONL). ``request_id`` finds the line's audit record."""

    line: int
    custom_id: str
    decision: str
    code: str | None = None
    reason: str | None = None
    entities: Mapping[str, int] = field(default_factory=dict)
    rules: tuple[str, ...] = ()
    request_id: str | None = None
    input_line: int | None = None
    """Restore only: the line of the input file this result answers."""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"line": self.line}
        if self.input_line is not None:
            row["input_line"] = self.input_line
        row.update({"custom_id": self.custom_id, "decision": self.decision, "code": self.code,
                    "entities": dict(self.entities), "rules": list(self.rules),
                    "reason": self.reason, "request_id": self.request_id})
        return row


@dataclass(frozen=True)
class Summary:
    lines: int
    decisions: Mapping[str, int]
    codes: Mapping[str, int]
    entities: Mapping[str, int]
    rules: Mapping[str, int]

    @property
    def blocked(self) -> int:
        return sum(self.codes.values())


def summarise(reports: Iterable[LineReport]) -> Summary:
    decisions: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    total = 0
    for row in reports:
        total += 1
        decisions[row.decision] += 1
        if row.code:
            codes[row.code] += 1
        entities.update(row.entities)
        rules.update(row.rules)
    return Summary(total, dict(decisions), dict(codes), dict(entities), dict(rules))
