"""`guard serve` operated like in production: a real process, real signals, real scrapes."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from guard.testing import FakeUpstream
from tests.integration.test_ops_lifecycle import BROKEN, POLICY_A, POLICY_B, until
from tests.integration.test_serve import serve  # noqa: F401 - the fixture
from tests.support.ops import scrape, value


def readyz(port: int) -> dict[str, Any]:
    response = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    body: dict[str, Any] = response.json()
    body["http_status"] = response.status_code
    return body


def test_sighup_reloads_the_policy_refusing_a_broken_one_and_sigterm_drains_a_stream(
        serve: Any, tmp_path: Path) -> None:  # noqa: F811
    policy = tmp_path / "team.yaml"
    policy.write_text(POLICY_A)
    with FakeUpstream() as upstream:
        served = serve("--upstream", upstream.base_url, "--policy", str(policy))
        until(lambda: readyz(served.port)["http_status"] == 200, "readiness")
        client = openai.OpenAI(base_url=served.base_url, api_key="sk-user", max_retries=0,
                               timeout=30)
        ask: Any = lambda text, **kw: client.chat.completions.create(  # noqa: E731
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **kw)
        ask("Mail jane.roe@example.com")
        sha_a = readyz(served.port)["policy"]["sha256"]

        policy.write_text(BROKEN)
        served.process.send_signal(signal.SIGHUP)
        refused = until(lambda: readyz(served.port)["policy"].get("last_reload_error"),
                        "the broken policy to be refused")
        assert "EMAIL_ADRESS" in refused
        assert readyz(served.port)["policy"]["sha256"] == sha_a
        ask("Mail jane.roe@example.com")  # the old policy still answers

        policy.write_text(POLICY_B)
        served.process.send_signal(signal.SIGHUP)
        until(lambda: readyz(served.port)["policy"]["sha256"] != sha_a, "the new policy")
        with pytest.raises(openai.BadRequestError):
            ask("Mail jane.roe@example.com")

        # SIGTERM in the middle of a stream: it finishes, then the audit trail is flushed.
        upstream.stream_pieces = [f"part {i} " for i in range(12)]
        upstream.stream_delay_s = 0.25
        stream = iter(ask("Count, please", stream=True))
        next(stream)
        served.process.send_signal(signal.SIGTERM)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.endswith("part 11 ")
        output, _ = served.process.communicate(timeout=60)
        # uvicorn re-raises the signal it handled once it has shut down cleanly.
        assert served.process.returncode in (0, -signal.SIGTERM), output
        assert "Application shutdown complete" in output

    assert "policy reload refused" in output and "EMAIL_ADRESS" in output
    assert "policy reloaded: team-b" in output
    found = served.records(at_least=4)
    assert [r["policy"]["name"] for r in found] == ["team-a", "team-a", "team-b", "team-b"]
    assert found[-1]["stream"] is True and found[-1]["status"] == "ok"
    assert found[-1]["truncated"] is False
    assert "jane.roe" not in served.audit.read_bytes().decode("utf-8", "replace")


def test_metrics_add_up_over_workers(serve: Any) -> None:  # noqa: F811
    served = serve("--workers", "2")
    until(lambda: readyz(served.port)["http_status"] == 200, "readiness")
    client = openai.OpenAI(base_url=served.base_url, api_key="sk-user", max_retries=0, timeout=30)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o-mini", messages=[
                    {"role": "user", "content": "Hello from jane.roe@example.com"}])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    served.records(at_least=12)
    url = f"http://127.0.0.1:{served.port}"
    for _ in range(4):  # whichever worker answers, it reports every worker's calls
        samples = scrape(url)
        assert value(samples, "guard_requests_total", route="/v1/chat/completions",
                     decision="redact", status="ok") == 12
        assert value(samples, "guard_pii_entities_total", direction="input",
                     entity="EMAIL_ADDRESS") == 12
    served.process.terminate()
    output, _ = served.process.communicate(timeout=60)
    assert "Prometheus multiprocess mode" in output
