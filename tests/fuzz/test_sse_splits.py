"""The SSE parser under arbitrary byte splits of recorded streams equals the unsplit parse."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from guard.offline import offline_reply, sse_lines, stream_chunks
from guard.wire.sse import SSEEvent, SSEParser


def recorded() -> list[bytes]:
    reply = offline_reply({"messages": [{"role": "user", "content":
                                         "Grüße, Zoë — 東京 ✓ 🙂 <EMAIL_ADDRESS_1>"}]})
    offline = b"".join(sse_lines(stream_chunks(reply, chunk_chars=3, include_usage=True)))
    return [
        offline,
        offline.replace(b"\n", b"\r\n"),
        offline.replace(b"\n", b"\r"),
        b": keep-alive\n\nevent: delta\nid: 7\ndata: line one\ndata: line two\n\n"
        b"data:no-space\r\n\r\ndata: {\"x\": \"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x99\x82\"}\n\n"
        b"retry: 10\nunknown: field\ndata\n\ndata: [DONE]\n\n",
        b"data: last event without its blank line",
        b"data: a\r\n\r\ndata: b\r\rdata: c\n\r\ndata: d\r\n\n",
        b"data: one\r\ndata: two\r\nevent: e\r\n\r\ndata: three\rdata: four\r\r",
    ]


def parse(pieces: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return events + parser.close()


@st.composite
def split(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream = draw(st.sampled_from(recorded()))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    bounds = [0, *cuts, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(bounds)]


@given(split())
def test_any_split_parses_like_the_whole(case: tuple[bytes, list[bytes]]) -> None:
    stream, pieces = case
    assert b"".join(pieces) == stream
    assert parse(pieces) == parse([stream])


def test_byte_by_byte_with_empty_reads_parses_like_the_whole() -> None:
    for stream in recorded():
        pieces = [p for i in range(len(stream)) for p in (stream[i:i + 1], b"")]
        assert parse(pieces) == parse([stream])


def test_recorded_streams_parse_to_the_expected_events() -> None:
    events = parse([recorded()[3]])
    assert events[0] == SSEEvent("line one\nline two", "delta", "7")
    assert [e.data for e in events[1:]] == ["no-space", '{"x": "é✓🙂"}', "", "[DONE]"]
