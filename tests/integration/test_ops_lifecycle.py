"""Health, readiness, live policy reload and graceful shutdown of the proxy, on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from guard import Guard, MemorySink, Settings, parse_policy
from guard.pii import PiiDetector
from guard.proxy import create_app
from guard.testing import FakeUpstream, LoopbackServer
from tests.integration.conftest import ProxyFactory
from tests.support.ops import scrape, value
from tests.support.sdk import records

POLICY_A = "version: 1\nname: team-a\npii: {entities: [EMAIL_ADDRESS, PERSON]}\n"
POLICY_B = ("version: 1\nname: team-b\n"
            "pii: {entities: [EMAIL_ADDRESS, PERSON], per_entity: {EMAIL_ADDRESS: block}}\n")
BROKEN = "version: 1\nname: team-c\npii: {entities: [EMAIL_ADRESS]}\n"


def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def readyz(server: str) -> tuple[int, dict[str, Any]]:
    response = httpx2.get(f"{server}/readyz", timeout=10)
    return response.status_code, response.json()


def ask(base_url: str, text: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=30)
    return client.chat.completions.create(model="gpt-4o-mini",
                                          messages=[{"role": "user", "content": text}], **extra)


class GatedDetector(PiiDetector):
    """A real detector, loaded but cold, whose warm-up waits until the test lets it run."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def warm_up(self) -> None:
        assert self.gate.wait(60), "the test never opened the gate"
        super().warm_up()


@pytest.fixture(scope="module")
def cold_detector() -> GatedDetector:
    return GatedDetector()


def test_not_ready_until_the_model_is_warm_while_alive_all_along(
        cold_detector: GatedDetector, upstream: FakeUpstream) -> None:
    sink = MemorySink()
    guard = Guard(parse_policy(POLICY_A), Settings.from_env(env={}, warm_up=False,
                                                            upstream_url=upstream.base_url),
                  detector=cold_detector, audit_sink=sink)
    assert not cold_detector.warmed
    with LoopbackServer(create_app(guard, upstream_url=upstream.base_url), lifespan="on") as server:
        assert httpx2.get(f"{server.url}/healthz", timeout=10).status_code == 200
        status, body = readyz(server.url)
        assert status == 503
        assert body["status"] == "not_ready"
        assert body["reasons"] == ["the PII model is warming up"]
        assert body["policy"]["sha256"] == guard.policy.sha256
        cold_detector.gate.set()
        until(lambda: readyz(server.url)[0] == 200, "readiness after warm-up")
        assert cold_detector.warmed
        assert readyz(server.url)[1]["reasons"] == []


class FlakyStore(MemorySink):
    """An audit store that refuses writes while ``down`` is set (no spool behind it)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = threading.Event()

    def write(self, records: list[dict[str, Any]]) -> None:
        if self.down.is_set():
            raise OSError("store unavailable")
        super().write(records)


def test_not_ready_while_the_audit_store_refuses_records_without_a_spool(
        make_guard: Any, upstream: FakeUpstream) -> None:
    store = FlakyStore()
    guard = Guard(parse_policy(POLICY_A), Settings.from_env(env={}, upstream_url=upstream.base_url),
                  detector=make_guard()[0].detector, audit_sink=store)
    with LoopbackServer(create_app(guard, upstream_url=upstream.base_url), lifespan="on") as server:
        assert readyz(server.url)[0] == 200
        store.down.set()
        ask(f"{server.url}/v1", "Hello")
        _, body = until(lambda: (r := readyz(server.url))[0] == 503 and r, "not ready")
        assert body["reasons"] == [
            "the audit store does not take records (OSError) and there is no spool"]
        store.down.clear()
        until(lambda: readyz(server.url)[0] == 200, "ready again once the store is back")
        assert len(records(guard, store, at_least=1)) == 1  # kept and written, not lost


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "team.yaml"
    path.write_text(POLICY_A)
    return path


def test_a_broken_policy_is_refused_and_a_good_one_applies_live(
        proxy: ProxyFactory, upstream: FakeUpstream, policy_file: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    base_url, guard, sink = proxy(POLICY_A, policy_source=str(policy_file), policy_watch_s=0.05)
    server = base_url.removesuffix("/v1")
    sha_a = guard.policy.sha256
    ask(base_url, "Mail jane.roe@example.com")
    assert "jane.roe@example.com" not in str(upstream.chat_requests[-1].body)

    policy_file.write_text(BROKEN)
    _, body = until(lambda: (r := readyz(server))[1]["policy"].get("last_reload_error") and r,
                    "the broken policy to be refused")
    assert "EMAIL_ADRESS" in body["policy"]["last_reload_error"]
    assert body["policy"]["sha256"] == sha_a and body["status"] == "ready"
    assert any("policy reload refused" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)
    ask(base_url, "Mail jane.roe@example.com")  # still redacted under the old policy

    # A stream that starts under A and is still running when B arrives stays under A.
    upstream.stream_pieces = ["one ", "two ", "three ", "four ", "five"]
    upstream.stream_delay_s = 0.2
    stream = iter(ask(base_url, "Count for jane.roe@example.com", stream=True))
    next(stream)
    policy_file.write_text(POLICY_B)
    sha_b = until(lambda: (s := readyz(server)[1]["policy"]["sha256"]) != sha_a and s,
                  "the good policy to apply")
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).endswith("five")
    upstream.stream_pieces, upstream.stream_delay_s = None, 0.0
    with pytest.raises(openai.BadRequestError) as blocked:  # B blocks e-mail addresses
        ask(base_url, "Mail jane.roe@example.com")
    assert blocked.value.code == "guard.pii"

    found = records(guard, sink, at_least=4)
    assert [r["policy"]["sha256"] for r in found] == [sha_a, sha_a, sha_a, sha_b]
    assert [r["policy"]["name"] for r in found] == ["team-a", "team-a", "team-a", "team-b"]
    assert found[2]["stream"] is True and found[2]["status"] == "ok"
    samples = scrape(server)
    assert value(samples, "guard_policy_reloads_total", result="refused") == 1
    assert value(samples, "guard_policy_reloads_total", result="applied") == 1
    assert value(samples, "guard_policy_info", name="team-b", sha256=sha_b[:12]) == 1
    assert value(samples, "guard_policy_info", name="team-a", sha256=sha_a[:12]) == 0


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_shutdown_during_a_stream_finishes_it_and_flushes_its_audit_record(
        make_guard: Any, upstream: FakeUpstream) -> None:
    guard, sink = make_guard(POLICY_A, upstream_url=upstream.base_url)
    server = LoopbackServer(create_app(guard, upstream_url=upstream.base_url), lifespan="on")
    server.start()
    pieces = [f"piece {i} " for i in range(15)]
    upstream.stream_pieces, upstream.stream_delay_s = pieces, 0.2
    stream = iter(ask(f"{server.url}/v1", "Write to jane.roe@example.com", stream=True))
    next(stream)
    stopper = threading.Thread(target=server.stop)  # what SIGTERM does: should_exit
    stopper.start()
    until(lambda: refused(server.port), "new connections to be refused while draining", 10)
    assert not upstream.stream_finished  # the stream was still running meanwhile
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.endswith("piece 14 ")
    stopper.join(30)
    assert not stopper.is_alive()
    # guard.close() ran in the lifespan shutdown: the record is in the store, no flush here.
    found = sink.records
    assert len(found) == 1
    assert found[0]["stream"] is True and found[0]["status"] == "ok"
    assert found[0]["truncated"] is False
    assert "jane.roe" not in str(found[0])

