"""Batch files for tests: request lines full of personal data, and what each must become.

A case mixes the urls Guard checks — chat completions, responses and embeddings lines — with
one line of a url it cannot check (``/v1/completions``), which must be withheld.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

FIRST = ["Maria", "James", "Aisha", "Liam", "Laura", "Peter", "Elena", "Daniel", "Hannah", "Omar"]
LAST = ["Gonzalez", "Whitaker", "Okafor", "Brennan", "Lindqvist", "Moreau", "Harrison", "Novak",
        "Schneider", "Haddad"]
SSN = "536-22-4781"
"""A US SSN the default policy refuses (``per_entity: {US_SSN: block}``)."""
UNSUPPORTED_URL = "/v1/completions"
"""A url Guard cannot check: its lines are withheld with ``guard.unsupported_url``."""


@dataclass(frozen=True)
class BatchCase:
    lines: list[str]
    texts: dict[str, str]
    """custom_id → the user's text, for the chat lines that must come back."""
    blocked: dict[str, str]
    """custom_id → the code the line must be withheld with."""
    pii: list[str]
    """Every value that must never reach the upstream, a report, the maps bytes or the trail."""
    responses: dict[str, str] = field(default_factory=dict)
    """custom_id → the user's text, for the Responses API lines that must come back."""
    embeddings: dict[str, list[str]] = field(default_factory=dict)
    """custom_id → the texts to embed, for the embeddings lines that must come back."""

    @property
    def answered(self) -> set[str]:
        """The custom_ids that reach the upstream and must come back with an answer."""
        return set(self.texts) | set(self.responses) | set(self.embeddings)


def batch_case(n: int = 1000) -> BatchCase:
    """``n`` lines: every 10th from 3 on a responses line, from 7 on an embeddings line,
    the rest chat; lines 42 and 43 of each hundred carry an SSN (withheld); with
    ``n >= 1000``, line 999 asks a url Guard cannot check."""
    lines: list[str] = []
    texts: dict[str, str] = {}
    responses: dict[str, str] = {}
    embeddings: dict[str, list[str]] = {}
    blocked: dict[str, str] = {}
    pii: set[str] = set()
    for i in range(n):
        first, last = FIRST[i % 10], LAST[(i // 10) % 10]
        email = f"{first.lower()}.{last.lower()}{i}@example.org"
        phone = f"(415) 555-{i % 10000:04d}"
        custom_id = f"request-{i}"
        pii.update({email, phone, f"{first} {last}"})
        text = (f"Hi, I'm {first} {last}. Please confirm my order {i} by mail to {email} "
                f"or call me at {phone}.")
        ssn = i % 100 in (42, 43)
        if ssn:
            text += f" My SSN is {SSN}."
            blocked[custom_id] = "guard.pii"
        line: dict[str, object]
        if i == 999:  # Guard cannot check this url: withheld, never passed on unchecked
            line = {"custom_id": custom_id, "method": "POST", "url": UNSUPPORTED_URL,
                    "body": {"model": "gpt-3.5-turbo-instruct", "prompt": text}}
            blocked[custom_id] = "guard.unsupported_url"
        elif i % 10 == 3:
            line = {"custom_id": custom_id, "method": "POST", "url": "/v1/responses",
                    "body": {"model": "gpt-4o-mini", "instructions": "You answer customers.",
                             "max_output_tokens": 200,
                             "input": [{"role": "user", "content": [
                                 {"type": "input_text", "text": text}]}]}}
            if not ssn:
                responses[custom_id] = text
        elif i % 10 == 7:
            inputs = [f"Order {i} for {first} {last}", f"Contact: {email}, {phone}"]
            line = {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
                    "body": {"model": "text-embedding-3-small", "input": inputs}}
            embeddings[custom_id] = inputs
        else:
            line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini", "max_tokens": 200,
                             "messages": [{"role": "system", "content": "You answer customers."},
                                          {"role": "user", "content": text}]}}
            if not ssn:
                texts[custom_id] = text
        lines.append(json.dumps(line))
    pii.add(SSN)
    return BatchCase(lines, texts, blocked, sorted(pii), responses, embeddings)


def echo(text: str) -> str:
    """What the fake upstream's default reply says back to ``text`` (one user message)."""
    return f"(offline model) I received 2 message(s). Your last message was: {text}"


def response_echo(text: str) -> str:
    """What the fake upstream's default Responses answer says back to ``text`` (one item)."""
    return f"(offline model) I received 1 input item(s). Your last message was: {text}"
