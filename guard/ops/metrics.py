"""Prometheus metrics, fed from the finished audit records (one source of truth).

Served by the proxy at ``GET /metrics``. In your own app (``GuardMiddleware``, the SDK
wrapper) attach the metrics to your guard and mount the ASGI app they come with::

    from guard.ops import GuardMetrics

    metrics = GuardMetrics()                  # its own registry; or registry=REGISTRY
    metrics.attach(guard)
    app.add_route("/metrics", metrics.asgi_app())  # Starlette / FastAPI

Labels are a fixed vocabulary: routes and models are mapped onto known names
(:mod:`guard.ops.labels`), entity types, moderation categories and rule ids come from the
policy; never text, PII values, keys or request ids. A per-principal counter exists only
with ``principals=True`` (``GUARD_METRICS_PRINCIPALS=1``), and then as a keyed hash.

Several worker processes (``guard serve --workers N``) share their metrics through
Prometheus' multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` must name an empty directory
before the workers start (``guard serve`` does this). Gauges then add up over live workers
(``streams_open``, the audit queue) or take the worst (circuit breaker state).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app
from prometheus_client.multiprocess import MultiProcessCollector

from guard.ops.hooks import CIRCUIT_STATES, CircuitState, add_circuit_listener, remove_circuit_listener
from guard.ops.labels import model_label, principal_label, route_label

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)
STAGES = ("pii", "input_rules", "moderation", "upstream", "first_token", "rules", "total")
"""The stages of ``latency_ms`` in the audit record that become histogram series."""


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (several workers share one set of metrics)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class GuardMetrics:
    """Every Guard metric, in one registry.

    ``registry``: where to register (default: a registry of its own, so several guards in
    one process never clash). ``models``: model names allowed as labels besides those with
    a price (default: ``GUARD_METRICS_MODELS``, comma-separated). ``principals``: count
    requests per hashed principal (default: ``GUARD_METRICS_PRINCIPALS``).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 models: Iterable[str] | None = None, principals: bool | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        env_models = [m.strip() for m in os.environ.get("GUARD_METRICS_MODELS", "").split(",")]
        self.models = {m for m in (models if models is not None else env_models) if m}
        self.principals = (principals if principals is not None else
                           os.environ.get("GUARD_METRICS_PRINCIPALS", "") in ("1", "true", "yes"))
        r = self.registry
        self.requests = Counter("guard_requests", "Guarded requests by route, decision and status.",
                                ["route", "decision", "status"], registry=r)
        self.requests_by_principal = Counter(
            "guard_principal_requests", "Guarded requests per principal (keyed hash; opt-in).",
            ["principal"], registry=r)
        self.blocks = Counter(
            "guard_blocks", "Blocked requests and answers by reason: kind is pii (reason: entity "
            "type), moderation (category), moderation_unavailable (error kind), input_rule or "
            "output_rule (rule id). Monitor mode counts what it would have blocked.",
            ["kind", "reason"], registry=r)
        self.pii_entities = Counter("guard_pii_entities", "PII entities found, by direction and type.",
                                    ["direction", "entity"], registry=r)
        self.moderation_checks = Counter(
            "guard_moderation_checks", "Moderation checks by direction, provider and outcome "
            "(pass, flagged, error, skipped).", ["direction", "provider", "outcome"], registry=r)
        self.moderation_errors = Counter(
            "guard_moderation_errors", "Failed moderation checks by direction, provider and error "
            "kind (timeout, connection, http_503, ...).", ["direction", "provider", "error"],
            registry=r)
        self.moderation_timeouts = Counter(
            "guard_moderation_timeouts", "Moderation checks that timed out.",
            ["direction", "provider"], registry=r)
        self.circuit_state = Gauge(
            "guard_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half open, 2 open.",
            ["breaker"], registry=r, multiprocess_mode="livemax")
        self.latency = Histogram("guard_stage_latency_seconds", "Latency of each stage of a call.",
                                 ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.streams_open = Gauge("guard_streams_open", "Streaming calls in flight.", registry=r,
                                  multiprocess_mode="livesum")
        self.tokens = Counter("guard_tokens", "Tokens reported by the upstream, by model and kind "
                              "(input, output).", ["model", "kind"], registry=r)
        self.cost = Counter("guard_cost_usd", "Cost in US dollars from the price table, by model.",
                            ["model"], registry=r)
        self.audit_queue = Gauge("guard_audit_queue_depth", "Audit records waiting in memory.",
                                 registry=r, multiprocess_mode="livesum")
        self.audit_spool = Gauge("guard_audit_spool_records",
                                 "Audit records waiting in the spool for the store.", registry=r,
                                 multiprocess_mode="livesum")
        self.audit_spool_bytes = Gauge("guard_audit_spool_bytes", "Bytes in audit spool files.",
                                       registry=r, multiprocess_mode="livesum")
        self.audit_written = Counter("guard_audit_records_written",
                                     "Audit records the store accepted.", registry=r)
        self.audit_dropped = Counter("guard_audit_records_dropped",
                                     "Audit records lost (queue full, or still in memory when a "
                                     "close timed out).", registry=r)
        self.policy_info = Gauge("guard_policy_info", "The policy in force (value 1).",
                                 ["name", "sha256"], registry=r, multiprocess_mode="livemax")
        self.policy_reloads = Counter("guard_policy_reloads", "Policy reloads by result "
                                      "(applied, refused).", ["result"], registry=r)
        self._lock = threading.Lock()
        self._writers: list[Any] = []
        self._seen: dict[int, tuple[int, int]] = {}
        self._policy: tuple[str, str] | None = None
        add_circuit_listener(self._circuit_changed)

    # -- wiring ----------------------------------------------------------------------------

    def attach(self, guard: Any) -> GuardMetrics:
        """Count every call of ``guard`` and watch its audit writer. Returns ``self``."""
        guard.observe(_Observer(self))
        with self._lock:
            self._writers.append(guard.audit_writer)
        self.policy_changed(guard.policy.name, guard.policy.sha256)
        return self

    def close(self) -> None:
        """Stop listening to circuit breakers (metrics already counted stay)."""
        remove_circuit_listener(self._circuit_changed)

    def policy_changed(self, name: str, sha256: str) -> None:
        new = (name, sha256[:12])
        with self._lock:
            old, self._policy = self._policy, new
        if old is not None and old != new:
            # Zero first: in multiprocess mode the value file outlives remove().
            self.policy_info.labels(*old).set(0)
            self.policy_info.remove(*old)
        self.policy_info.labels(*new).set(1)

    def _circuit_changed(self, breaker: str, state: CircuitState) -> None:
        self.circuit_state.labels(breaker).set(CIRCUIT_STATES.index(state))

    # -- from the audit record --------------------------------------------------------------

    def observe_record(self, record: Mapping[str, Any], *, blocking_entities: Iterable[str] = (),
                       principal_key: bytes = b"", prices: Iterable[str] = ()) -> None:
        """Count one finished call. ``blocking_entities``: the entity types the policy
        blocks (the reasons of a ``guard.pii`` block)."""
        decision = str(record.get("decision"))
        self.requests.labels(route_label(record.get("route")), decision,
                             str(record.get("status"))).inc()
        if self.principals:
            self.requests_by_principal.labels(
                principal_label(record.get("principal"), principal_key)).inc()
        entities: Mapping[str, int] = record.get("input_entities") or {}
        for entity, count in entities.items():
            self.pii_entities.labels("input", entity).inc(count)
        for entity, count in (record.get("output_entities") or {}).items():
            self.pii_entities.labels("output", entity).inc(count)
        if decision == "block":
            for kind, reason in _block_reasons(record, set(blocking_entities)):
                self.blocks.labels(kind, reason).inc()
        for direction, verdict in (record.get("moderation") or {}).items():
            if isinstance(verdict, Mapping):
                self._moderation(direction, verdict)
        for stage in STAGES:
            value = (record.get("latency_ms") or {}).get(stage)
            if isinstance(value, int | float) and (value > 0 or stage == "total"):
                self.latency.labels(stage).observe(value / 1000)
        model = model_label(record.get("model"), {*self.models, *prices})
        usage = record.get("usage") or {}
        for ours, kind in (("prompt_tokens", "input"), ("completion_tokens", "output")):
            tokens = usage.get(ours)
            if isinstance(tokens, int) and tokens > 0:
                self.tokens.labels(model, kind).inc(tokens)
        cost = record.get("cost_usd")
        if isinstance(cost, int | float) and cost > 0:
            self.cost.labels(model).inc(cost)
        self.refresh()

    def _moderation(self, direction: str, verdict: Mapping[str, Any]) -> None:
        provider = str(verdict.get("failed_provider") or verdict.get("provider"))
        error = verdict.get("error")
        if error:
            self.moderation_checks.labels(direction, provider, "error").inc()
            self.moderation_errors.labels(direction, provider, str(error)).inc()
            if error == "timeout":
                self.moderation_timeouts.labels(direction, provider).inc()
        if verdict.get("fallback") or not error:
            # A fallback answered: count its own check too (it is not the failed one).
            self.moderation_checks.labels(direction, str(verdict.get("provider")),
                                          str(verdict.get("outcome"))).inc()

    # -- audit writers ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the audit writers' counters into the gauges and counters."""
        with self._lock:
            writers = list(self._writers)
            queued = spooled = spool_bytes = 0
            for writer in writers:
                stats = writer.stats
                queued += stats["queued"]
                spooled += stats["spool_pending"]
                spool_bytes += stats["spool_bytes"]
                written, dropped = self._seen.get(id(writer), (0, 0))
                if stats["written"] > written:
                    self.audit_written.inc(stats["written"] - written)
                if stats["dropped"] > dropped:
                    self.audit_dropped.inc(stats["dropped"] - dropped)
                self._seen[id(writer)] = (max(written, stats["written"]),
                                          max(dropped, stats["dropped"]))
            if writers:
                self.audit_queue.set(queued)
                self.audit_spool.set(spooled)
                self.audit_spool_bytes.set(spool_bytes)

    # -- exposition ------------------------------------------------------------------------

    def asgi_app(self) -> ASGIApp:
        """An ASGI app answering with the current metrics (text or OpenMetrics format).

        A plain ASGI callable (not a function), so Starlette routes to it as is:
        ``app.add_route("/metrics", metrics.asgi_app())`` or ``app.mount("/metrics", ...)``.
        """
        registry = self.registry
        if multiprocess_dir():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return _MetricsApp(self, make_asgi_app(registry))


class _MetricsApp:
    def __init__(self, metrics: GuardMetrics, inner: ASGIApp) -> None:
        self.metrics = metrics
        self.inner = inner

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            self.metrics.refresh()
        await self.inner(scope, receive, send)


class _Observer:
    """The :class:`~guard.ops.hooks.CallObserver` that feeds one guard's calls in."""

    def __init__(self, metrics: GuardMetrics) -> None:
        self.metrics = metrics

    def stream_opened(self) -> None:
        self.metrics.streams_open.inc()

    def stream_closed(self) -> None:
        self.metrics.streams_open.dec()

    def record_finished(self, record: Mapping[str, Any], guard: Any) -> None:
        pii = guard.policy.pii  # the policy that decided this call
        self.metrics.observe_record(
            record,
            blocking_entities=[e for e in record.get("input_entities") or {}
                               if pii.action_for(e) == "block"],
            principal_key=guard.settings.principal_key,
            prices=guard.settings.prices,
        )


def _block_reasons(record: Mapping[str, Any], blocking: set[str]) -> list[tuple[str, str]]:
    code = record.get("code")
    moderation = record.get("moderation") or {}
    if code == "guard.pii":
        return [("pii", e) for e in sorted(blocking)] or [("pii", "other")]
    if code == "guard.moderation":
        flagged = (moderation.get("input") or {}).get("flagged") or ["other"]
        return [("moderation", str(c)) for c in flagged]
    if code == "guard.moderation_unavailable":
        return [("moderation_unavailable", str((moderation.get("input") or {}).get("error")))]
    if code == "guard.policy":
        return [("input_rule", str(h.get("id"))) for h in record.get("input_rules") or ()
                if h.get("action") == "block"] or [("input_rule", "other")]
    return [("output_rule", str(h.get("id"))) for h in record.get("output_rules") or ()
            if h.get("action") == "block"] or [("output_rule", "other")]
