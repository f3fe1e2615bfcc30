"""Server-sent events: an incremental parser and a formatter.

The parser takes bytes as they arrive from the network — an event split over several reads,
several events in one read, ``\\r\\n`` or ``\\r`` line ends, comments and keep-alives,
multi-line ``data:`` — and returns whole events only. Memory is bounded by the largest
single event, never by the length of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """Feed bytes, get complete events (per the WHATWG event-stream rules)."""

    def __init__(self, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._pending_cr = False
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []  # an empty read must not forget a \r that ended the previous one
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the \n of a \r\n that was split across two reads
        self._pending_cr = False
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, found = self._next_line()
            if not found:
                break
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self._buffer) > self.max_event_bytes:
            raise ValueError("server-sent event larger than the limit")
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a last event without its blank line still counts."""
        events: list[SSEEvent] = []
        if self._buffer:
            event = self._line(self._buffer.decode("utf-8", "replace"))
            self._buffer = b""
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _next_line(self) -> tuple[str, bool]:
        cr, lf = self._buffer.find(b"\r"), self._buffer.find(b"\n")
        if cr == -1 and lf == -1:
            return "", False
        if cr != -1 and (lf == -1 or cr < lf):
            end, skip = cr, 1
            if cr + 1 < len(self._buffer):
                if self._buffer[cr + 1:cr + 2] == b"\n":
                    skip = 2
            else:
                self._pending_cr = True
        else:
            end, skip = lf, 1
        line = self._buffer[:end].decode("utf-8", "replace")
        self._buffer = self._buffer[end + skip:]
        return line, True

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment or keep-alive
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            self._id = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data and self._event is None:
            return None
        event = SSEEvent("\n".join(self._data), self._event, self._id)
        self._data, self._event = [], None
        return event


def format_event(data: str, event: str | None = None) -> bytes:
    """One event on the wire; multi-line data becomes several ``data:`` lines."""
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return (head + body + "\n").encode()


DONE = format_event("[DONE]")
