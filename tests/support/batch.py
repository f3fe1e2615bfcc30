"""Batch files for tests: request lines full of personal data, and what each must become."""

from __future__ import annotations

import json
from dataclasses import dataclass

FIRST = ["Maria", "James", "Aisha", "Liam", "Laura", "Peter", "Elena", "Daniel", "Hannah", "Omar"]
LAST = ["Gonzalez", "Whitaker", "Okafor", "Brennan", "Lindqvist", "Moreau", "Harrison", "Novak",
        "Schneider", "Haddad"]
SSN = "536-22-4781"
"""A US SSN the default policy refuses (``per_entity: {US_SSN: block}``)."""


@dataclass(frozen=True)
class BatchCase:
    lines: list[str]
    texts: dict[str, str]
    """custom_id → the user's text, for the chat lines that must come back."""
    blocked: dict[str, str]
    """custom_id → the code the line must be withheld with."""
    pii: list[str]
    """Every value that must never reach the upstream, a report, the maps bytes or the trail."""


def batch_case(n: int = 1000) -> BatchCase:
    lines: list[str] = []
    texts: dict[str, str] = {}
    blocked: dict[str, str] = {}
    pii: set[str] = set()
    for i in range(n):
        first, last = FIRST[i % 10], LAST[(i // 10) % 10]
        email = f"{first.lower()}.{last.lower()}{i}@example.org"
        phone = f"(415) 555-{i % 10000:04d}"
        custom_id = f"request-{i}"
        pii.update({email, phone, f"{first} {last}"})
        if i % 250 == 249:  # Guard cannot check embeddings lines yet: withheld, not passed on
            line = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
                    "body": {"model": "text-embedding-3-small", "input": f"Mail {email}"}}
            blocked[custom_id] = "guard.unsupported_url"
        else:
            text = (f"Hi, I'm {first} {last}. Please confirm my order {i} by mail to {email} "
                    f"or call me at {phone}.")
            if i % 100 == 42:
                text += f" My SSN is {SSN}."
                blocked[custom_id] = "guard.pii"
            else:
                texts[custom_id] = text
            line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "max_tokens": 200,
                             "messages": [{"role": "system", "content": "You answer customers."},
                                          {"role": "user", "content": text}]}}
        lines.append(json.dumps(line))
    pii.add(SSN)
    return BatchCase(lines, texts, blocked, sorted(pii))


def echo(text: str) -> str:
    """What the fake upstream's default reply says back to ``text`` (one user message)."""
    return f"(offline model) I received 2 message(s). Your last message was: {text}"
