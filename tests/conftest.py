"""Shared fixtures: one NER model per test session, guards with in-memory audit sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from guard import Guard, MemorySink, Settings, load_policy, parse_policy
from guard.pii import PiiDetector, get_detector

GuardFactory = Callable[..., tuple[Guard, MemorySink]]


@pytest.fixture(scope="session")
def detector() -> PiiDetector:
    return get_detector()


@pytest.fixture
def make_guard(detector: PiiDetector) -> Iterator[GuardFactory]:
    """``make_guard(yaml_text=None, policy="default", **settings) -> (guard, sink)``.

    Settings come only from the arguments (never from the developer's environment); the
    audit trail goes to memory and is flushed when the factory's guard is closed.
    """
    built: list[Guard] = []

    def factory(yaml_text: str | None = None, *, policy: str = "default",
                **settings: Any) -> tuple[Guard, MemorySink]:
        loaded = parse_policy(yaml_text, source="test.yaml") if yaml_text else load_policy(policy)
        settings.setdefault("moderation_provider", "none")
        sink = MemorySink()
        guard = Guard(loaded, Settings.from_env(env={}, **settings), detector=detector,
                      audit_sink=sink)
        built.append(guard)
        return guard, sink

    yield factory
    for guard in built:
        guard.close()
