"""The two ways operations code hears about calls, with no dependency of its own.

* :class:`CallObserver` — told when a streaming call opens and closes, and given every
  finished audit record. Metrics are one observer (:class:`guard.ops.GuardMetrics`); the
  record is their only source, so a dashboard and the audit trail can never disagree.
  Register one with :meth:`guard.Guard.observe`.
* Circuit breakers (around a moderation endpoint, say) report their state with
  :func:`report_circuit_state`; listeners (the metrics gauge) subscribe with
  :func:`add_circuit_listener`. Process-wide, because a breaker guards an endpoint, not a
  policy.

An observer that raises is logged (by exception type only) and never fails the request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

log = logging.getLogger("guard.ops")

CircuitState = Literal["closed", "half_open", "open"]
CIRCUIT_STATES: tuple[CircuitState, ...] = ("closed", "half_open", "open")
"""In this order the gauge reports them: 0 closed, 1 half open, 2 open."""

CircuitListener = Callable[[str, CircuitState], None]


class CallObserver(Protocol):
    """Hears about calls. Methods run on the request path: keep them quick, never block."""

    def stream_opened(self) -> None:
        """A streaming call passed its input checks and is on its way to the client."""

    def stream_closed(self) -> None:
        """That streaming call ended (finished, blocked, failed or abandoned)."""

    def record_finished(self, record: Mapping[str, Any], guard: Any) -> None:
        """The call's audit record, as written (before the hash chain is added), and the
        guard as the call saw it (the policy that decided it, even after a reload)."""


def notify(observers: list[CallObserver], method: str, *args: Any) -> None:
    """Call ``method`` on every observer; a failing observer is logged and skipped."""
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except Exception as exc:
            log.warning("call observer %s.%s failed: %s", type(observer).__qualname__, method,
                        type(exc).__qualname__)


_listeners: list[CircuitListener] = []
_states: dict[str, CircuitState] = {}
_lock = threading.Lock()


def report_circuit_state(breaker: str, state: CircuitState) -> None:
    """A circuit breaker says it is now ``closed``, ``half_open`` or ``open``.

    ``breaker`` names it with a short, bounded identifier chosen by configuration (a
    provider name such as ``openai-moderation``), never a URL with credentials or anything
    from a request: it becomes a metric label.

    >>> report_circuit_state("openai-moderation", "open")
    """
    if state not in CIRCUIT_STATES:
        raise ValueError(f"circuit state must be one of {', '.join(CIRCUIT_STATES)}, got {state!r}")
    with _lock:
        _states[breaker] = state
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(breaker, state)
        except Exception as exc:
            log.warning("circuit listener failed: %s", type(exc).__qualname__)


def add_circuit_listener(listener: CircuitListener) -> None:
    """Subscribe to circuit states; the states reported so far are replayed at once."""
    with _lock:
        _listeners.append(listener)
        known = dict(_states)
    for breaker, state in known.items():
        listener(breaker, state)


def remove_circuit_listener(listener: CircuitListener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)
