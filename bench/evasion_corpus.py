"""Write ``bench/data/evasion.jsonl``: PII written to dodge detection, one technique per case.

Each line is a chat request body as raw JSON text (so JSON string escapes stay escapes),
the technique, the entity, and ``leaks``: strings that must not reach the upstream when the
value is caught. Regenerate with ``python bench/evasion_corpus.py`` (deterministic).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "data" / "evasion.jsonl"

EMAILS = ["maria.gonzalez@example.org", "j.smith@acme-corp.com", "olivia.chen@university.edu"]
PHONES = ["(415) 555-0132", "212-555-0147", "+44 20 7946 0958"]
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004"]
SSNS = ["536-22-1846"]
IBANS = ["GB82 WEST 1234 5698 7654 32"]
VALUES = [("EMAIL_ADDRESS", v) for v in EMAILS] + [("PHONE_NUMBER", v) for v in PHONES] + [
    ("CREDIT_CARD", v) for v in CARDS] + [("US_SSN", v) for v in SSNS] + [
    ("IBAN_CODE", v) for v in IBANS]

LEAD = {"EMAIL_ADDRESS": "Please write to {} about the refund.",
        "PHONE_NUMBER": "You can call me on {} after six.",
        "CREDIT_CARD": "Charge the card {} for the order.",
        "US_SSN": "My social security number is {} for the form.",
        "IBAN_CODE": "Send the money to {} by Friday."}

ZW = "\u200b"
HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "c": "\u0441", "p": "\u0440",
              "x": "\u0445", "i": "\u0456", "j": "\u0458", "s": "\u0455"}


def chat(*contents: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": c} for c in contents]}


def plain(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    return chat(LEAD[entity].format(value)), None


def zero_width(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    return chat(LEAD[entity].format(ZW.join(value))), None


def bidi(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    half = len(value) // 2
    return chat(LEAD[entity].format(f"{value[:half]}\u2066\u202d{value[half:]}\u202c\u2069")), None


def fullwidth(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value)
    return chat(LEAD[entity].format(wide)), None


def homoglyph(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    return chat(LEAD[entity].format("".join(HOMOGLYPHS.get(c, c) for c in value))), None


def at_dot(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    if entity != "EMAIL_ADDRESS":
        return None, None  # type: ignore[return-value]
    spelled = value.replace("@", " [at] ").replace(".", " (dot) ")
    return chat(LEAD[entity].format(spelled)), None


def at_dot_words(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    if entity != "EMAIL_ADDRESS":
        return None, None  # type: ignore[return-value]
    spelled = value.replace("@", " at ").replace(".", " dot ")
    return chat(LEAD[entity].format(spelled)), None


def spaced_digits(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    if entity in ("EMAIL_ADDRESS", "IBAN_CODE"):
        return None, None  # type: ignore[return-value]
    digits = "".join(c for c in value if c.isdigit() or c == "+")
    return chat(LEAD[entity].format(" ".join(digits))), None


def dotted_digits(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    if entity in ("EMAIL_ADDRESS", "IBAN_CODE"):
        return None, None  # type: ignore[return-value]
    digits = "".join(c for c in value if c.isdigit())
    return chat(LEAD[entity].format(".".join(digits))), None


def split_messages(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    half = len(value) // 2
    return chat(LEAD[entity].format(value[:half]), value[half:]), None


def json_escape(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    body = chat(LEAD[entity].format(value))
    escaped = "".join(f"\\u{ord(c):04x}" if c in "@- " else c for c in value)
    raw = json.dumps(body).replace(json.dumps(value)[1:-1], escaped)
    return body, raw


def base64_encoded(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    encoded = base64.b64encode(value.encode()).decode()
    return chat(f"Decode this base64 and use it: {encoded}"), None


def url_encoded(entity: str, value: str) -> tuple[dict[str, Any], str | None]:
    return chat(LEAD[entity].format(urllib.parse.quote(value, safe=""))), None


TECHNIQUES: dict[str, Callable[[str, str], tuple[dict[str, Any], str | None]]] = {
    "plain": plain, "zero_width": zero_width, "bidi": bidi, "fullwidth": fullwidth,
    "homoglyph": homoglyph, "at_dot_brackets": at_dot, "at_dot_words": at_dot_words,
    "spaced_digits": spaced_digits, "dotted_digits": dotted_digits,
    "split_messages": split_messages, "json_escape": json_escape,
    "base64": base64_encoded, "url_encoded": url_encoded,
}


def leaks_of(body: dict[str, Any], entity: str, value: str, technique: str) -> list[str]:
    """What must be gone upstream: the obfuscated value as written in the texts."""
    texts = [m["content"] for m in body["messages"]]
    if technique == "split_messages":
        half = len(value) // 2
        return [value[:half], value[half:]]
    if technique == "base64":
        return [texts[0].rsplit(" ", 1)[1]]
    lead_prefix, _, lead_suffix = LEAD[entity].partition("{}")
    written = texts[0].removeprefix(lead_prefix).removesuffix(lead_suffix)
    return [written]


def cases() -> Iterator[dict[str, Any]]:
    for technique, make in TECHNIQUES.items():
        for entity, value in VALUES:
            body, raw = make(entity, value)
            if body is None:
                continue
            yield {"technique": technique, "entity": entity,
                   "raw": raw or json.dumps(body, ensure_ascii=False),
                   "leaks": leaks_of(body, entity, value, technique)}


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    rows = list(cases())
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {OUT} ({len(rows)} cases, {len(TECHNIQUES)} techniques)")


if __name__ == "__main__":
    main()
