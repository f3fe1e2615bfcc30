"""Deployment settings: what is not policy (where things are, keys, prices).

Read from keyword arguments first, then ``GUARD_*`` / ``OPENAI_*`` environment variables,
then defaults. Policies say *what* to enforce; settings say *where* and *with which keys*.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from guard.errors import ConfigError
from guard.pricing import DEFAULT_PRICES

DEFAULT_UPSTREAM = "https://api.openai.com/v1"
DEFAULT_AUDIT_SINK = "sqlite:///guard-audit.db"


@dataclass(frozen=True)
class Settings:
    upstream_url: str = DEFAULT_UPSTREAM
    """Base URL of the OpenAI-compatible upstream; moderation goes there too by default."""
    api_key: str | None = field(default=None, repr=False)
    """Server-side key for the upstream and moderation (``OPENAI_API_KEY``)."""
    audit_sink: str | None = None
    """Overrides the policy's ``audit.sink`` (``GUARD_AUDIT``)."""
    spacy_model: str | None = None
    """Overrides the policy's ``pii.model`` (``GUARD_SPACY_MODEL``)."""
    moderation_provider: str | None = None
    """Forces one moderation provider for every check (``local`` when offline)."""
    principal_key: bytes = field(default=b"", repr=False)
    """Key for hashing API keys into audit principals (``GUARD_PRINCIPAL_KEY``)."""
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    warm_up: bool = True
    pii_processes: int = 0
    """Extra processes sharing PII detection of long texts (``GUARD_PII_PROCESSES``; 0: none)."""
    max_text_chars: int = 500_000
    """Most characters of text one request may carry into PII detection and moderation
    (``GUARD_MAX_TEXT_CHARS``); about gpt-4o-mini's whole context. Beyond: a 400."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {
            "upstream_url": env.get("GUARD_UPSTREAM_URL") or DEFAULT_UPSTREAM,
            "api_key": env.get("OPENAI_API_KEY") or None,
            "audit_sink": env.get("GUARD_AUDIT") or None,
            "spacy_model": env.get("GUARD_SPACY_MODEL") or None,
            "pii_processes": _count(env.get("GUARD_PII_PROCESSES"), "GUARD_PII_PROCESSES"),
        }
        if env.get("GUARD_MAX_TEXT_CHARS"):
            values["max_text_chars"] = _positive_int("GUARD_MAX_TEXT_CHARS", env["GUARD_MAX_TEXT_CHARS"])
        key = env.get("GUARD_PRINCIPAL_KEY")
        # Without a configured key, principals are stable only for this process's lifetime.
        values["principal_key"] = key.encode() if key else secrets.token_bytes(32)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values["principal_key"], str):
            values["principal_key"] = values["principal_key"].encode()
        settings = cls(**values)
        return replace(settings, upstream_url=settings.upstream_url.rstrip("/"))



def _count(raw: str | None, name: str) -> int:
    """A non-negative integer setting from the environment (unset or empty: 0)."""
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, got {raw!r}")
    return value
def _positive_int(name: str, value: str) -> int:
    if not value.strip().isdigit() or int(value) <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)
