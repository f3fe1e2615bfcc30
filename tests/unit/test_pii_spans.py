"""The JSON-lines span format (``write_spans``, ``python -m guard.pii``) and the public names."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Collection, Sequence

import pytest

import guard.pii
from guard.pii.spans import BATCH_LINES, write_spans
from guard.values import Span


class RecordingDetector:
    """Marks every "x" in a text, and remembers the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.calls: list[tuple[frozenset[str], float]] = []

    def analyze_batch(
        self, texts: Sequence[str], entities: Collection[str], min_score: float = 0.0
    ) -> list[list[Span]]:
        self.batches.append(list(texts))
        self.calls.append((frozenset(entities), min_score))
        return [[Span(i, i + 1, "X", 0.9) for i, c in enumerate(text) if c == "x"] for text in texts]


def test_write_spans_writes_one_json_list_per_input_line_in_order() -> None:
    lines = ['{"text": "ax"}\n', "\n", '{"text": "none"}\n', '{"text": "xx", "id": 3}\n']
    out = io.StringIO()
    detector = RecordingDetector()
    assert write_spans(lines, out, detector, {"X"}, 0.5) == 3
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        [{"start": 1, "end": 2, "label": "X", "score": 0.9}],
        [],
        [
            {"start": 0, "end": 1, "label": "X", "score": 0.9},
            {"start": 1, "end": 2, "label": "X", "score": 0.9},
        ],
    ]
    assert detector.calls == [(frozenset({"X"}), 0.5)]


def test_write_spans_sends_lines_to_the_detector_in_batches() -> None:
    lines = [json.dumps({"text": f"t{i}"}) for i in range(BATCH_LINES + 5)]
    detector = RecordingDetector()
    write_spans(lines, io.StringIO(), detector, {"X"}, 0.5)
    assert [len(b) for b in detector.batches] == [BATCH_LINES, 5]


@pytest.mark.parametrize("line", ["not json", '["text"]', '{"text": 5}', '{"txt": "a"}'])
def test_write_spans_rejects_a_bad_line_naming_its_number(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        write_spans(['{"text": "ok"}', line], io.StringIO(), RecordingDetector(), {"X"}, 0.5)


def test_public_names_are_exactly_the_documented_ones() -> None:
    assert sorted(guard.pii.__all__) == sorted(
        [
            "PiiDetector",
            "get_detector",
            "resolve_overlaps",
            "normalise",
            "SUPPORTED_ENTITIES",
            "select_spacy_model",
        ]
    )
    assert {
        "PERSON",
        "LOCATION",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "US_SSN",
        "IP_ADDRESS",
        "IBAN_CODE",
        "URL",
    } <= guard.pii.SUPPORTED_ENTITIES


def test_module_command_reads_jsonl_and_uses_the_policy_defaults() -> None:
    lines = [
        {"text": "Mail jane@example.com or call +1 212 555 0142."},
        {"text": "Visit https://example.org on 2024-01-31."},  # URL, DATE_TIME: not default
        {"text": "Ref 0490 39 07 81"},  # phone shape without context: 0.4 < 0.5
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "guard.pii"],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [[(s["label"], s["start"], s["end"]) for s in row] for row in rows] == [
        [("EMAIL_ADDRESS", 5, 21), ("PHONE_NUMBER", 30, 45)],
        [],
        [],
    ]
    assert all(s["score"] >= 0.5 for row in rows for s in row)


def test_module_command_rejects_an_unknown_entity() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "guard.pii", "--entities", "PERSON,NOPE"],
        input="",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "NOPE" in proc.stderr
