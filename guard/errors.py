"""Guard's exceptions.

Everything Guard raises on purpose derives from one root, so callers can catch it once::

    GuardError
    ├── ConfigError            bad settings or a component that cannot be built (start-up only)
    │   └── PolicyError        a policy file that does not validate (names file, line, key path)
    ├── WireFormatError        a request or response body that is not the OpenAI shape we expect
    └── ModerationUnavailable  the moderation provider failed (timeout, HTTP error, connection)

Decisions (allow, redact, warn, block) are values, never exceptions. HTTP status codes are
chosen only at the ASGI edge.
"""

from __future__ import annotations


class GuardError(Exception):
    """Root of every exception Guard raises on purpose."""


class ConfigError(GuardError):
    """Settings or components that cannot be used; raised at start-up, never while serving."""


class PolicyError(ConfigError):
    """A policy file that does not validate.

    ``problems`` holds one line per problem: ``file:line: key.path: what is wrong``.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid policy {source}:\n  " + "\n  ".join(problems))


class WireFormatError(GuardError):
    """A body that is not valid JSON or not the OpenAI shape for its route.

    ``param`` names the offending field in OpenAI's style (``messages[2].content``) when known.
    """

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        self.param = param
        self.code = code
        super().__init__(message)


class ModerationUnavailable(GuardError):
    """The moderation provider could not give an answer.

    ``kind`` is a short, stable, PII-free reason: ``timeout``, ``connection``, ``http_<status>``,
    ``bad_response``.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"moderation unavailable ({kind}){': ' + detail if detail else ''}")
