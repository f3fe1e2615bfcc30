"""Undo common ways of writing PII so that patterns miss it, keeping the offset map exact.

Runs after :func:`~guard.pii.normalise.normalise_text` (which already removed invisible
characters and folded full-width forms) on its normalised copy:

- look-alike letters: Cyrillic and Greek letters that look Latin, inside a word that also
  has Latin letters (``maria@example.org`` typed with a Cyrillic a), become the Latin letter (one for one);
- spelled separators: ``[at]``, ``(at)``, ``{dot}``, ``[.]`` ... and ``name at host dot com``
  become ``@`` and ``.``;
- spaced or dotted digits: ``4 1 5 5 5 5 0 1 3 2`` (seven or more single digits) lose the
  separators;
- URL escapes: ``%40``, ``%20``, ``%2B`` ... become the character;
- base64: a token that decodes to printable text is replaced by that text, every character
  of which maps to the whole token (so a value found in it redacts the whole token).

Every output character remembers the original span it came from, so detections still map
back to the caller's text exactly. Texts with none of these shapes cost a few ``in`` checks.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from guard.pii.normalise import NormalisedText

# Code points, not the letters themselves: in source they would be indistinguishable.
_CONFUSABLE = str.maketrans({
    # Cyrillic
    0x0430: "a", 0x0432: "b", 0x0435: "e", 0x043A: "k", 0x043C: "m", 0x043D: "h", 0x043E: "o",
    0x0440: "p", 0x0441: "c", 0x0442: "t", 0x0443: "y", 0x0445: "x", 0x0455: "s", 0x0456: "i",
    0x0458: "j", 0x0501: "d", 0x051B: "q", 0x051D: "w", 0x0410: "A", 0x0412: "B", 0x0415: "E",
    0x041A: "K", 0x041C: "M", 0x041D: "H", 0x041E: "O", 0x0420: "P", 0x0421: "C", 0x0422: "T",
    0x0423: "Y", 0x0425: "X", 0x0405: "S", 0x0406: "I", 0x0408: "J",
    # Greek
    0x03B1: "a", 0x03BF: "o", 0x03C1: "p", 0x03BD: "v", 0x03B9: "i", 0x03BA: "k", 0x03C4: "t",
    0x03C5: "u", 0x0391: "A", 0x0392: "B", 0x0395: "E", 0x0397: "H", 0x0399: "I", 0x039A: "K",
    0x039C: "M", 0x039D: "N", 0x039F: "O", 0x03A1: "P", 0x03A4: "T", 0x03A7: "X", 0x03A5: "Y",
    0x0396: "Z",
})
_CONFUSABLE_CHARS = frozenset(chr(c) for c in _CONFUSABLE)
_WORD = re.compile(r"\S+")

# Quantifiers around repeated parts are bounded: a text of a million spaces or of
# "a dot a dot ..." must cost linear time, not quadratic.
_BRACKETED = re.compile(r"[ \t]{0,3}[\[({<][ \t]{0,3}(at|dot|@|\.)[ \t]{0,3}[\])}>][ \t]{0,3}",
                        re.IGNORECASE)
_SPELLED_EMAIL = re.compile(
    r"\b([\w.+-]+(?:[ \t]{1,3}dot[ \t]{1,3}[\w+-]+){0,6})[ \t]{1,3}at[ \t]{1,3}"
    r"([\w-]+(?:[ \t]{1,3}dot[ \t]{1,3}[\w-]+){1,6})\b", re.IGNORECASE)
_SPELLED_DOT = re.compile(r"[ \t]{1,3}dot[ \t]{1,3}", re.IGNORECASE)
_SPACED_DIGITS = re.compile(r"(?<![\w.])\+?\d(?:[ .]\d){6,}(?![\w]|\.\d)")
_URL_ESCAPE = re.compile(r"%([2-7][0-9A-Fa-f])")
_BASE64 = re.compile(r"(?<![\w+/=])(?=[A-Za-z0-9+/]*[0-9+/=A-Z])[A-Za-z0-9+/]{12,}={0,2}(?![\w+/=])")

Piece = tuple[str, int, int]
"""Replacement text and the normalised range ``[start, end)`` it stands for."""


def respell(norm: NormalisedText) -> NormalisedText:
    """``norm`` with the obfuscations above undone; offsets still map to the original."""
    text = norm.text
    lower = text.lower() if ("at" in text or "AT" in text or "At" in text) else ""
    if not text.isascii() and any(c in _CONFUSABLE_CHARS for c in text):
        norm = _fold_confusables(norm)
        text = norm.text
        lower = text.lower()
    if "[" in text or "(" in text or "{" in text or "<" in text:
        norm = _substitute(norm, _BRACKETED, lambda m: "@" if m.group(1).lower() in ("at", "@")
                           else ".")
        text = norm.text
        lower = text.lower()
    if lower and " at " in lower and " dot " in lower:
        norm = _substitute(norm, _SPELLED_EMAIL, _join_spelled_email)
    if _has_digit_run(norm.text):
        norm = _substitute(norm, _SPACED_DIGITS, lambda m: m.group(0).replace(" ", "").replace(".", ""))
    if "%" in norm.text:
        norm = _substitute(norm, _URL_ESCAPE, lambda m: chr(int(m.group(1), 16)))
    if len(norm.text) >= 12:
        norm = _decode_base64(norm)
    return norm


def _has_digit_run(text: str) -> bool:
    return any(c.isdigit() for c in text) and (" " in text or "." in text) and bool(
        _SPACED_DIGITS.search(text))


def _join_spelled_email(m: re.Match[str]) -> str:
    local = _SPELLED_DOT.sub(".", m.group(1))
    domain = _SPELLED_DOT.sub(".", m.group(2))
    return f"{local}@{domain}"


def _fold_confusables(norm: NormalisedText) -> NormalisedText:
    chars = list(norm.text)
    for word in _WORD.finditer(norm.text):
        token = word.group(0)
        if any(c in _CONFUSABLE_CHARS for c in token) and any(c.isascii() and c.isalpha()
                                                               for c in token):
            chars[word.start():word.end()] = token.translate(_CONFUSABLE)
    folded = "".join(chars)
    return norm if folded == norm.text else NormalisedText(folded, norm.starts, norm.ends)


def _substitute(norm: NormalisedText, pattern: re.Pattern[str],
                replace: Callable[[re.Match[str]], str]) -> NormalisedText:
    """Replace each match; every new character maps to the whole matched original span,
    except where a replacement keeps characters of the match one for one (a common prefix
    and suffix), which keep their own offsets."""
    pieces: list[Piece] = []
    for m in pattern.finditer(norm.text):
        new = replace(m)
        if new != m.group(0):
            pieces.append((new, m.start(), m.end()))
    return _rebuild(norm, pieces) if pieces else norm


def _decode_base64(norm: NormalisedText) -> NormalisedText:
    pieces: list[Piece] = []
    for m in _BASE64.finditer(norm.text):
        token = m.group(0)
        if len(token.rstrip("=")) % 4 == 1:
            continue
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
            plain = decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if len(plain) >= 6 and plain.isprintable():
            # Spaces around the decoded text keep it a word of its own for the patterns.
            pieces.append((f" {plain} ", m.start(), m.end()))
    return _rebuild(norm, pieces, whole=True) if pieces else norm


def _rebuild(norm: NormalisedText, pieces: list[Piece], *, whole: bool = False) -> NormalisedText:
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    at = 0
    for new, start, end in pieces:
        out.append(norm.text[at:start])
        starts.extend(norm.starts[at:start])
        ends.extend(norm.ends[at:start])
        old = norm.text[start:end]
        head = 0 if whole else _common_prefix(old, new)
        tail = 0 if whole else _common_prefix(old[head:][::-1], new[head:][::-1])
        span_start, span_end = norm.starts[start], norm.ends[end - 1]
        for i, char in enumerate(new):
            out.append(char)
            if i < head:
                starts.append(norm.starts[start + i])
                ends.append(norm.ends[start + i])
            elif i >= len(new) - tail:
                j = end - (len(new) - i)
                starts.append(norm.starts[j])
                ends.append(norm.ends[j])
            else:
                starts.append(span_start)
                ends.append(span_end)
        at = end
    out.append(norm.text[at:])
    starts.extend(norm.starts[at:])
    ends.extend(norm.ends[at:len(norm.text)])
    return NormalisedText("".join(out), starts, ends)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
