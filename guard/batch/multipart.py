"""``multipart/form-data`` in memory: parse a file upload, and encode one again.

Parsing uses python-multipart's streaming parser with callbacks that keep every part in
memory — never a temporary file, since an upload may hold personal data until it is redacted.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class FormError(ValueError):
    """A body that is not the multipart form it claims to be (message safe to show)."""


@dataclass
class Part:
    name: str
    data: bytes = field(repr=False)
    filename: str | None = None
    content_type: str | None = None


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise FormError("The upload must be multipart/form-data with a boundary.")
    return boundary


def parse_form(body: bytes, content_type: str) -> list[Part]:
    """Every part of the form, in order."""
    parts: list[Part] = []
    headers: dict[bytes, bytes] = {}
    chunks: list[bytes] = []
    name: list[bytes] = []
    value: list[bytes] = []
    ended = False

    def header_field(data: bytes, start: int, end: int) -> None:
        name.append(data[start:end])

    def header_value(data: bytes, start: int, end: int) -> None:
        value.append(data[start:end])

    def header_end() -> None:
        headers[b"".join(name).strip().lower()] = b"".join(value).strip()
        name.clear()
        value.clear()

    def part_data(data: bytes, start: int, end: int) -> None:
        chunks.append(data[start:end])

    def part_end() -> None:
        _, options = parse_options_header(headers.get(b"content-disposition", b""))
        field_name = options.get(b"name")
        if field_name is None:
            raise FormError("A form part has no name.")
        filename = options.get(b"filename")
        content_type = headers.get(b"content-type")
        parts.append(Part(field_name.decode("utf-8", "replace"), b"".join(chunks),
                          filename.decode("utf-8", "replace") if filename is not None else None,
                          content_type.decode("latin-1") if content_type else None))
        headers.clear()
        chunks.clear()

    def end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(boundary_of(content_type), {
        "on_header_field": header_field, "on_header_value": header_value,
        "on_header_end": header_end, "on_part_data": part_data, "on_part_end": part_end,
        "on_end": end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError:
        raise FormError("The multipart body could not be parsed.") from None
    if not ended:
        raise FormError("The multipart body ends before its closing boundary.")
    return parts


def encode_form(parts: Sequence[Part]) -> tuple[bytes, str]:
    """``(body, content_type)`` for ``parts``, with a fresh boundary."""
    boundary = "guard-" + secrets.token_hex(16)
    out: list[bytes] = []
    for part in parts:
        disposition = f'form-data; name="{_quote(part.name)}"'
        if part.filename is not None:
            disposition += f'; filename="{_quote(part.filename)}"'
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode())
        if part.content_type:
            out.append(f"Content-Type: {part.content_type}\r\n".encode())
        out.append(b"\r\n" + part.data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
