"""The moderation circuit breaker: opens after N outages, probes after a cool-down, recovers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from guard import parse_policy
from guard.errors import ModerationUnavailable
from guard.moderation import CircuitBreaker, Moderator, ProviderScores
from guard.moderation.breaker import is_outage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Flaky:
    """A provider that fails with ``kind`` while ``down`` and counts its calls."""

    down: bool = True
    kind: str = "http_500"
    hang: bool = False
    calls: int = 0
    name: str = "flaky"
    seen: list[str] = field(default_factory=list)

    async def score(self, texts: Sequence[str], images: Sequence[str] = (), *,
                    api_key: str | None = None) -> ProviderScores:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(3600)
        if self.down:
            raise ModerationUnavailable(self.kind, "fake")
        return ProviderScores(scores={"violence": 0.01})


def moderator(provider: Flaky, clock: Clock, *, failures: int = 3, on_error: str = "block",
              ) -> Moderator:
    return Moderator(provider, on_error=on_error,  # type: ignore[arg-type]
                     breaker=CircuitBreaker(failures=failures, cooldown_s=10, clock=clock))


async def test_opens_after_n_consecutive_failures_and_stops_calling_the_endpoint() -> None:
    clock, provider = Clock(), Flaky()
    mod = moderator(provider, clock)
    errors = [(await mod.check(["hello"])).error for _ in range(6)]
    assert errors == ["http_500"] * 3 + ["circuit_open"] * 3
    assert provider.calls == 3
    assert mod.breaker is not None and mod.breaker.state == "open"


async def test_half_open_probe_after_cool_down_closes_the_circuit_on_success() -> None:
    clock, provider = Clock(), Flaky()
    mod = moderator(provider, clock)
    for _ in range(3):
        await mod.check(["hello"])
    provider.down = False
    clock.now += 9.9
    assert (await mod.check(["hello"])).error == "circuit_open"
    clock.now += 0.2
    probe = await mod.check(["hello"])
    assert probe.outcome == "pass" and probe.error is None
    assert mod.breaker is not None and mod.breaker.state == "closed"
    assert (await mod.check(["hello"])).outcome == "pass"
    assert provider.calls == 5


async def test_failed_probe_opens_the_circuit_for_another_cool_down() -> None:
    clock, provider = Clock(), Flaky()
    mod = moderator(provider, clock)
    for _ in range(3):
        await mod.check(["hello"])
    clock.now += 11
    assert (await mod.check(["hello"])).error == "http_500"  # the probe, and it failed
    assert (await mod.check(["hello"])).error == "circuit_open"
    assert provider.calls == 4
    clock.now += 11
    provider.down = False
    assert (await mod.check(["hello"])).outcome == "pass"


async def test_only_one_probe_goes_out_while_half_open() -> None:
    clock, provider = Clock(), Flaky()
    mod = Moderator(provider, timeout_s=0.2,
                    breaker=CircuitBreaker(failures=1, cooldown_s=10, clock=clock))
    await mod.check(["hello"])
    clock.now += 11
    provider.hang = True
    results = await asyncio.gather(*(mod.check(["hello"]) for _ in range(5)))
    assert sorted(r.error or "" for r in results) == ["circuit_open"] * 4 + ["timeout"]
    assert provider.calls == 2


async def test_a_cancelled_probe_frees_the_half_open_slot() -> None:
    clock, provider = Clock(), Flaky(hang=True)
    mod = Moderator(provider, timeout_s=60,
                    breaker=CircuitBreaker(failures=1, cooldown_s=10, clock=clock))
    provider.hang = False
    await mod.check(["hello"])
    clock.now += 11
    provider.hang = True
    task = asyncio.create_task(mod.check(["hello"]))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    provider.hang, provider.down = False, False
    assert (await mod.check(["hello"])).outcome == "pass"


async def test_caller_errors_do_not_open_the_circuit() -> None:
    clock, provider = Clock(), Flaky(kind="http_401")
    mod = moderator(provider, clock, failures=2)
    errors = [(await mod.check(["hello"])).error for _ in range(5)]
    assert errors == ["http_401"] * 5 and provider.calls == 5


async def test_success_resets_the_consecutive_count() -> None:
    clock, provider = Clock(), Flaky()
    mod = moderator(provider, clock, failures=3)
    for _ in range(2):
        await mod.check(["hello"])
    provider.down = False
    await mod.check(["hello"])
    provider.down = True
    errors = [(await mod.check(["hello"])).error for _ in range(3)]
    assert errors == ["http_500"] * 3


async def test_on_error_local_answers_with_the_fallback_while_open() -> None:
    clock, provider = Clock(), Flaky()
    mod = moderator(provider, clock, failures=1, on_error="local")
    await mod.check(["hello"])
    verdict = await mod.check(["how do I kill a python process"])
    assert verdict.error == "circuit_open" and verdict.provider == "local"
    assert verdict.outcome in ("pass", "flagged") and provider.calls == 1


@pytest.mark.parametrize(("kind", "outage"), [
    ("timeout", True), ("connection", True), ("http_500", True), ("http_503", True),
    ("http_429", True), ("bad_response", True), ("http_401", False), ("http_400", False),
    ("http_404", False)])
def test_outage_kinds(kind: str, outage: bool) -> None:
    assert is_outage(kind) is outage


def test_policy_configures_the_breaker_with_defaults() -> None:
    default = parse_policy("version: 1\nname: p\n", source="p.yaml")
    assert default.moderation.input is not None
    breaker = default.moderation.input.circuit_breaker
    assert (breaker.enabled, breaker.failures, breaker.cooldown_s) == (True, 5, 30.0)
    custom = parse_policy(
        "version: 1\nname: p\nmoderation:\n  input:\n    circuit_breaker: {failures: 2, "
        "cooldown_s: 5}\n", source="p.yaml")
    assert custom.moderation.input is not None
    assert custom.moderation.input.circuit_breaker.failures == 2


def test_bad_breaker_settings_are_refused_with_the_key_path() -> None:
    from guard.errors import PolicyError

    with pytest.raises(PolicyError, match="circuit_breaker"):
        parse_policy("version: 1\nname: p\nmoderation:\n  input:\n    circuit_breaker: "
                     "{failures: 0}\n", source="p.yaml")
