"""Guard: PII pseudonymisation, moderation, output rules and a PII-free audit trail for
applications that call OpenAI models.

>>> from guard import Guard
>>> guard = Guard.from_policy("default")  # doctest: +SKIP
"""

from guard.asgi import GuardMiddleware
from guard.audit import MemorySink
from guard.call import Call, InputVerdict, OutputVerdict
from guard.engine import Guard
from guard.errors import (
    ConfigError,
    GuardError,
    ModerationUnavailable,
    PolicyError,
    WireFormatError,
)
from guard.policy import Policy, load_policy, parse_policy
from guard.sdk import context, protect, wrap
from guard.settings import Settings
from guard.values import Finding, ModerationVerdict, Span

__all__ = [
    "Call",
    "ConfigError",
    "Finding",
    "Guard",
    "GuardError",
    "GuardMiddleware",
    "InputVerdict",
    "MemorySink",
    "ModerationUnavailable",
    "ModerationVerdict",
    "OutputVerdict",
    "Policy",
    "PolicyError",
    "Settings",
    "Span",
    "WireFormatError",
    "context",
    "load_policy",
    "parse_policy",
    "protect",
    "wrap",
]
