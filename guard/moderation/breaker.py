"""A circuit breaker for a moderation provider: stop calling an endpoint that keeps failing.

After ``failures`` consecutive outage-type failures (timeouts, refused connections, 5xx,
429, unreadable answers) the circuit *opens*: checks fail at once with the error kind
``circuit_open``, without a network call, and ``on_error`` decides what the request gets.
After ``cooldown_s`` one request is let through as a *probe* (half-open); its success closes
the circuit, its failure opens it for another cool-down. So a dead endpoint costs one
timeout per cool-down instead of one per request, and recovery needs no restart.

Failures that say something about one caller rather than the endpoint (``http_401`` for a
wrong client key, ``http_400``) never open the circuit: one bad key must not take moderation
away from everybody else.

State is per process (each ``guard serve`` worker has its own breaker).

Example::

    breaker = CircuitBreaker(failures=3, cooldown_s=10)
    if breaker.allow():
        ok = await call_endpoint()
        breaker.record(success=ok, kind=None if ok else "timeout")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]

OPEN_ERROR = "circuit_open"
"""The error kind of a check refused because the circuit is open."""


def is_outage(kind: str) -> bool:
    """True for failure kinds that mean the endpoint is in trouble (not the caller)."""
    if kind.startswith("http_"):
        code = kind.removeprefix("http_")
        return code == "429" or (code.isdigit() and code.startswith("5"))
    return kind in ("timeout", "connection", "bad_response", "provider_error")


class CircuitBreaker:
    """Counts consecutive outage failures and opens, probes and closes the circuit.

    Thread-safe (the SDK adapters may moderate from several threads); ``clock`` is
    injectable for tests.
    """

    def __init__(self, *, failures: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be > 0")
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a check call the endpoint now? In half-open state only one probe may."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def record(self, *, success: bool, kind: str | None = None) -> None:
        """The outcome of a call that :meth:`allow` let through."""
        with self._lock:
            probe, self._probing = self._probing, False
            if success or (kind is not None and not is_outage(kind)):
                # The endpoint answered (even a caller's 401 is an answer): it is up.
                self._consecutive = 0
                self._opened_at = None
                return
            self._consecutive += 1
            if probe or self._consecutive >= self.failures:
                self._opened_at = self._clock()

    def release(self) -> None:
        """A call :meth:`allow` let through ended with no outcome (cancelled): free the probe."""
        with self._lock:
            self._probing = False

    def __repr__(self) -> str:
        return (f"CircuitBreaker(state={self.state!r}, failures={self.failures}, "
                f"cooldown_s={self.cooldown_s})")
