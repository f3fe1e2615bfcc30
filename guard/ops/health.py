"""Liveness and readiness: what ``GET /healthz`` and ``GET /readyz`` answer.

``/healthz`` says the process answers HTTP (a liveness probe: restart me if this fails).
``/readyz`` says whether to send traffic here (a readiness probe, a load balancer's health
check): 200 when the PII model is loaded and warmed, the policy in force is valid and the
audit trail can take records; 503 with the reasons otherwise, and while shutting down::

    {"status": "not_ready", "reasons": ["the PII model is warming up"],
     "policy": {"name": "default", "sha256": "3f2a..."}, "audit": {...}}

A store that is down while the writer spools to local disk keeps the instance ready (no
record is lost, and one database outage must not take every instance out of the pool); the
body says ``"spooling": true``. A store that refuses records with no spool to fall back on
makes it not ready.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from guard.engine import Guard


@dataclass
class Readiness:
    """The readiness of one guard in one process; the server flips its flags."""

    guard: Guard
    warming: bool = False
    """True while the PII model warms up in the background."""
    shutting_down: bool = False
    reload_error: str | None = field(default=None)
    """Why the last policy reload was refused (the old policy stays in force)."""

    def check(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, body)``; ``body["reasons"]`` lists what is missing, in plain words."""
        reasons: list[str] = []
        guard = self.guard
        if self.shutting_down:
            reasons.append("shutting down")
        if self.warming or not getattr(guard.detector, "warmed", True):
            reasons.append("the PII model is warming up")
        writer = guard.audit_writer
        stats = writer.stats
        if not writer.running:
            reasons.append("the audit writer is stopped")
        elif stats["last_error"] and not writer.has_spool:
            reasons.append(f"the audit store does not take records ({stats['last_error']}) "
                           "and there is no spool")
        body: dict[str, Any] = {
            "status": "not_ready" if reasons else "ready",
            "reasons": reasons,
            "policy": {"name": guard.policy.name, "sha256": guard.policy.sha256,
                       "source": guard.policy.source},
            "audit": {"queued": stats["queued"], "spool_pending": stats["spool_pending"],
                      "spooling": bool(stats["last_error"] and writer.has_spool),
                      "last_error": stats["last_error"]},
        }
        if self.reload_error:
            body["policy"]["last_reload_error"] = self.reload_error
        return not reasons, body

    def response(self) -> tuple[int, bytes]:
        ready, body = self.check()
        return (200 if ready else 503), json.dumps(body).encode()
