"""The SSE parser gives the same events however the bytes are split."""

from __future__ import annotations

import random

from guard.wire.sse import SSEEvent, SSEParser, format_event

RECORDED = (
    b": keep-alive\r\n\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: note\ndata: line one\ndata: line two\n\n"
    b'data: {"b": "caf\xc3\xa9 \xe2\x9c\x93"}\r\r'
    b"id: 7\ndata:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent('{"a": 1}'),
    SSEEvent("line one\nline two", event="note"),
    SSEEvent('{"b": "café ✓"}'),
    SSEEvent("no-space", id="7"),
    SSEEvent("[DONE]", id="7"),  # the last event id persists, as the spec says
]


def parse(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    return events + parser.close()


def test_whole_stream_parses_to_the_expected_events() -> None:
    assert parse([RECORDED]) == EXPECTED


def test_every_two_way_split_gives_the_same_events() -> None:
    for cut in range(len(RECORDED) + 1):
        assert parse([RECORDED[:cut], RECORDED[cut:]]) == EXPECTED, cut


def test_random_many_way_splits_give_the_same_events() -> None:
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(RECORDED)), rng.randint(1, 20)))
        pieces = [RECORDED[a:b] for a, b in zip([0, *cuts], [*cuts, len(RECORDED)], strict=True)]
        assert parse(pieces) == EXPECTED


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    assert parse([RECORDED[i:i + 1] for i in range(len(RECORDED))]) == EXPECTED


def test_last_event_without_blank_line_still_counts() -> None:
    assert parse([b"data: tail"]) == [SSEEvent("tail")]


def test_format_round_trips_multi_line_data() -> None:
    assert parse([format_event("a\nb", event="x")]) == [SSEEvent("a\nb", event="x")]
