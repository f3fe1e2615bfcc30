"""``guard classify``: the offline models over JSON lines, so they can be measured from outside.

Input: one JSON object per line with a string ``text`` (other keys are ignored; blank lines
are skipped). Output: one line per input, in order::

    {"flagged": true, "scores": {"harassment": 0.01, ..., "violence/graphic": 0.0}}
    {"flagged": false, "scores": {"injection": 0.02}}

Example::

    classify_lines(io.StringIO('{"text": "hello"}\\n'), sys.stdout, "injection", 0.5)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TextIO


def _scorer(model: str) -> Callable[[str], Mapping[str, float]]:
    if model == "moderation":
        from guard.moderation.model import shipped_model

        return shipped_model().score
    if model == "injection":
        from guard.injection import shipped_scorer

        scorer = shipped_scorer()
        return lambda text: {"injection": scorer.score(text)}
    raise ValueError(f"unknown model {model!r}; known: moderation, injection")


def classify_lines(source: TextIO, out: TextIO, model: str, threshold: float = 0.5) -> int:
    """Score every JSON line of ``source`` into ``out``; returns the number of lines written.

    Raises ``ValueError`` naming the line for input that is not ``{"text": "..."}``.
    """
    score = _scorer(model)
    written = 0
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise ValueError(f"line {number}: not JSON; expected {{\"text\": \"...\"}}") from None
        text = item.get("text") if isinstance(item, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"line {number}: expected an object with a string \"text\"")
        scores = {k: round(v, 6) for k, v in score(text).items()}
        flagged = any(v >= threshold for v in scores.values())
        out.write(json.dumps({"flagged": flagged, "scores": scores}) + "\n")
        written += 1
    return written
