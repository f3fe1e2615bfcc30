"""Nothing leaks: no PII in any record or log line, no connection to anything but loopback."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from guard import Guard, Settings, load_policy
from guard.audit import open_sink, read_records
from guard.pii import PiiDetector
from tests.support.bodies import answer, chat

PII_VALUES = [
    "Maria Gonzalez", "maria.gonzalez@example.org", "(415) 555-0132", "4111 1111 1111 1111",
    "536-22-7614", "DE89 3704 0044 0532 0130 00", "192.168.12.34", "sk-live-secret-key-999",
]
PROMPTS = [
    "I'm Maria Gonzalez, mail maria.gonzalez@example.org or call (415) 555-0132.",
    "Charge 4111 1111 1111 1111 and refund DE89 3704 0044 0532 0130 00, from 192.168.12.34.",
    "My SSN is 536-22-7614.",
]


@pytest.fixture
def refuse_outbound(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse (and remember) every connection that is not to loopback."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in (
                "127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise ConnectionRefusedError(f"test refuses outbound connection to {address}")
        return real_connect(self, address)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            attempts.append(host)
            raise socket.gaierror(f"test refuses name lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


async def run_traffic(guard: Guard) -> list[Any]:
    results = []
    for prompt in PROMPTS:
        async with guard.call(api_key="sk-live-secret-key-999") as call:
            verdict = await call.check_request(chat(prompt, "ok", "and again: " + prompt))
            if not verdict.blocked:
                out = await call.check_response(answer(
                    "Dear <PERSON_1>, card 5500 0000 0000 0004 noted; key sk-proj-"
                    "abcdefghijklmnopqrstuvwxyz."))
                results.append(out)
    return results


async def test_whole_engine_opens_no_connection_beyond_loopback(
        refuse_outbound: list[Any], detector: PiiDetector, tmp_path: Path) -> None:
    policy = load_policy("default")
    # The offline set-up: local moderation, SQLite audit trail, a fresh e-mail/URL check.
    guard = Guard(policy, Settings.from_env(env={}, moderation_provider="local"),
                  detector=detector, audit_sink=open_sink(f"sqlite:///{tmp_path}/audit.db"))
    try:
        await run_traffic(guard)
        redacted = await detector.analyze_many(
            ["Visit https://docs.example.co.uk/x or mail a@b.museum"], ["EMAIL_ADDRESS", "URL"])
        assert redacted[0], "e-mail and URL checks still work offline"
    finally:
        guard.close()
    assert refuse_outbound == []


async def test_no_pii_value_in_any_audit_record_or_log_line(
        detector: PiiDetector, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    jsonl = tmp_path / "audit.jsonl"
    sqlite = tmp_path / "audit.db"
    captured: list[str] = []
    for url in (f"jsonl://{jsonl}", f"sqlite:///{sqlite}", "stdout"):
        guard = Guard(load_policy("default"), Settings.from_env(env={}, moderation_provider="local"),
                      detector=detector, audit_sink=open_sink(url))
        try:
            await run_traffic(guard)
        finally:
            guard.close()
    captured.append(jsonl.read_text())
    captured.append(json.dumps(read_records(f"sqlite:///{sqlite}")))
    captured.append(sqlite.read_bytes().decode("utf-8", "replace"))
    out = capsys.readouterr()
    captured += [out.out, out.err, caplog.text]
    everything = "\n".join(captured)
    assert everything.count('"guard.request"') >= 3 * len(PROMPTS)
    for value in PII_VALUES:
        assert value not in everything, f"{value!r} leaked"
    assert "<PERSON_1>" not in everything, "placeholders belong to the request only"
