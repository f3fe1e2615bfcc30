"""Operations: metrics, traces, health and readiness, policy reload.

- :class:`GuardMetrics` (``guard.ops.metrics``): Prometheus metrics from the audit records.
- :mod:`guard.ops.tracing`: OpenTelemetry spans per call and stage, ``traceparent``
  propagation, :func:`configure_tracing` from the ``OTEL_*`` variables.
- :class:`Readiness` (``guard.ops.health``): what ``/readyz`` reports.
- :class:`PolicyReloader` (``guard.ops.reload``): ``SIGHUP`` and a watched policy file.
- :func:`report_circuit_state` (``guard.ops.hooks``): how circuit breakers report.
"""

from guard.ops.hooks import CallObserver, add_circuit_listener, report_circuit_state
from guard.ops.metrics import GuardMetrics
from guard.ops.tracing import configure_tracing

__all__ = [
    "CallObserver",
    "GuardMetrics",
    "add_circuit_listener",
    "configure_tracing",
    "report_circuit_state",
]
