"""Hypothesis profiles for the fuzz tests, and one proxy per module in front of a fake upstream.

``ci`` (the default) keeps each test to a few seconds; ``long`` is for a manual run::

    GUARD_FUZZ_PROFILE=long .venv/bin/python -m pytest tests/fuzz -q
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from guard import Guard, MemorySink, Settings, parse_policy
from guard.pii import PiiDetector
from guard.proxy import create_app
from guard.testing import FakeUpstream, LoopbackServer
from guard.wire.chat import extract_request

settings.register_profile("ci", max_examples=25, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=1000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("GUARD_FUZZ_PROFILE", "ci"))

POLICY = "version: 1\nname: fuzz\nmoderation: {input: null}\n"


def echo_texts(body: Mapping[str, Any]) -> dict[str, Any]:
    """A completion whose content is every text the upstream was shown, one per line."""
    texts = [slot.text for slot in extract_request(body).texts]
    return {"id": "chatcmpl-fuzz", "object": "chat.completion", "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": "\n".join(texts),
                                     "refusal": None}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@dataclass
class FuzzProxy:
    base_url: str
    upstream: FakeUpstream
    guard: Guard
    sink: MemorySink


@pytest.fixture(scope="module")
def fuzz_proxy(detector: PiiDetector) -> Iterator[FuzzProxy]:
    sink = MemorySink()
    with FakeUpstream(reply=echo_texts) as upstream:
        guard = Guard(parse_policy(POLICY, source="fuzz.yaml"),
                      Settings.from_env(env={}, moderation_provider="none",
                                        upstream_url=upstream.base_url),
                      detector=detector, audit_sink=sink)
        upstream.stream_chunk_chars = 7
        with LoopbackServer(create_app(guard, upstream_url=upstream.base_url),
                            lifespan="on") as server:
            yield FuzzProxy(f"{server.url}/v1", upstream, guard, sink)
        guard.close()
