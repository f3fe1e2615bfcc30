"""Reading batch files from disk and writing the results (JSONL, UTF-8)."""

from __future__ import annotations

from pathlib import Path

from guard.batch.lines import BatchFileError


def split_lines(data: bytes, *, source: str) -> list[str]:
    """The lines of a JSONL file. Split on ``\\n`` only: JSON strings may hold U+2028."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchFileError(source, [f"byte {exc.start}: the file is not UTF-8 text"]) from None
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BatchFileError(str(path), [f"cannot be read ({exc.strerror or exc})"]) from None
    return split_lines(data, source=str(path))


def sibling(path: Path, suffix: str) -> Path:
    """``out.jsonl`` → ``out{suffix}`` (``out.maps``, ``out.report.jsonl``)."""
    stem = path.name.removesuffix(".jsonl") if path.name.endswith(".jsonl") else path.stem
    return path.with_name(stem + suffix)
