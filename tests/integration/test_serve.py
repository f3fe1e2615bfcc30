"""`guard serve` as a new user runs it: a real process, the official SDK, the audit store."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from guard.audit import read_records
from guard.testing import FakeUpstream

GUARD = shutil.which("guard", path=str(Path(sys.executable).parent)) or "guard"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int, audit: Path) -> None:
        self.process, self.port, self.audit = process, port, audit

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def records(self, at_least: int = 1) -> list[dict[str, object]]:
        deadline = time.monotonic() + 10
        while True:
            found = read_records(f"sqlite:///{self.audit}") if self.audit.exists() else []
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        port = free_port()
        audit = tmp_path / f"audit-{port}.db"
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("OPENAI_API_KEY", "GUARD_UPSTREAM_URL", "GUARD_AUDIT", "GUARD_POLICY")}
        clean.update({"GUARD_AUDIT": f"sqlite:///{audit}", **(env or {})})
        process = subprocess.Popen([GUARD, "serve", "--port", str(port), *args], env=clean,
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        processes.append(process)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return Served(process, port, audit)
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                raise RuntimeError(f"guard serve did not start:\n{output}")
            time.sleep(0.2)

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_offline_serve_redacts_restores_and_audits_with_no_key(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve()
    client = openai.OpenAI(base_url=served.base_url, api_key="no-key-needed", max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org"}])
    content = completion.choices[0].message.content or ""
    assert "(offline model)" in content
    assert content.endswith("Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org")
    (record,) = served.records()
    assert record["decision"] == "redact"
    assert record["input_entities"] == {"PERSON": 1, "EMAIL_ADDRESS": 1}
    assert record["moderation"]["input"]["provider"] == "local"
    assert "Maria" not in json.dumps(record)
    assert "maria.gonzalez" not in served.audit.read_bytes().decode("utf-8", "replace")
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": "I want to kill myself tonight"}])
    assert info.value.code == "guard.moderation"
    said = "I'm Maria Gonzalez, mail maria.gonzalez@example.org"
    answer = client.responses.create(model="gpt-4o-mini", input=said)
    assert "(offline model)" in answer.output_text and answer.output_text.endswith(said)
    events = list(client.responses.create(model="gpt-4o-mini", input=said, stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.endswith(said)
    vectors = client.embeddings.create(model="text-embedding-3-small", input=[said, "plain"])
    assert len(vectors.data) == 2
    routes = [(r["route"], r["decision"], r["stream"]) for r in served.records(at_least=5)[2:]]
    assert routes == [("/v1/responses", "redact", False), ("/v1/responses", "redact", True),
                      ("/v1/embeddings", "redact", False)]
    assert "maria.gonzalez" not in served.audit.read_bytes().decode("utf-8", "replace")
    client.close()
    served.process.terminate()
    output, _ = served.process.communicate(timeout=20)
    assert "OFFLINE MODE" in output


def test_serve_with_upstream_sends_redacted_text_and_moderation_there(serve) -> None:  # type: ignore[no-untyped-def]
    with FakeUpstream() as upstream:
        served = serve("--upstream", upstream.base_url)
        client = openai.OpenAI(base_url=served.base_url, api_key="sk-user", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": "Mail maria.gonzalez@example.org please"}])
        paths = [r.path for r in upstream.requests]
        sent = json.dumps([r.body for r in upstream.requests])
    assert (completion.choices[0].message.content or "").endswith(
        "Mail maria.gonzalez@example.org please")
    assert "/v1/moderations" in paths and "/v1/chat/completions" in paths
    assert "maria.gonzalez" not in sent and "<EMAIL_ADDRESS_1>" in sent
    assert served.records()[0]["moderation"]["input"]["provider"] == "openai"


def test_server_key_without_client_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-server"}
    env.pop("GUARD_CLIENT_KEYS", None)
    result = subprocess.run([GUARD, "serve", "--port", str(free_port())], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "GUARD_CLIENT_KEYS" in result.stderr and "open relay" in result.stderr
