"""Fixtures for the SDK adapter tests: an upstream that fails on cue, a guard in front of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guard import Guard, MemorySink
from guard.sdk import shutdown
from tests.conftest import GuardFactory
from tests.support.sdk import SdkUpstream


@pytest.fixture(autouse=True)
def _stop_background_loop() -> Iterator[None]:
    yield
    # Moderation connections opened on the background loop close with it; a test's guard
    # dies with the test, so stop the loop within the test (warnings are errors here).
    shutdown()


@pytest.fixture
def upstream() -> Iterator[SdkUpstream]:
    with SdkUpstream() as fake:
        yield fake


@pytest.fixture
def guarded(make_guard: GuardFactory, upstream: SdkUpstream) -> tuple[Guard, MemorySink]:
    """The default policy, moderation by the fake upstream's ``/moderations``."""
    return make_guard(moderation_provider=None, upstream_url=upstream.base_url)
