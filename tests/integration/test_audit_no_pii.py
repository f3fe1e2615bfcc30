"""PII-free by construction: requests full of personal data go through the proxy into every
store, the spool, exports, the CLI, the review page and the logs - and none of it comes out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest
from click.testing import CliRunner

from guard import Guard, Settings, load_policy
from guard.audit.cli import audit
from guard.audit.store import Filters
from guard.audit.urls import open_store
from guard.audit.web import create_review_app
from guard.pii import PiiDetector
from guard.proxy import create_app
from guard.testing import FakeUpstream, LoopbackServer
from tests.integration.test_audit_page import render
from tests.support.audit import postgres_schema

CLIENT_KEY = "sk-proj-client-secret-key-4242"
PII = [
    "Maria Gonzalez", "maria.gonzalez@example.org", "(415) 555-0132", "4111 1111 1111 1111",
    "536-22-7614", "DE89 3704 0044 0532 0130 00", "192.168.12.34", "Jürgen Müller",
    "j.mueller@beispiel.de", "+49 30 901820", "742 Evergreen Terrace", CLIENT_KEY,
]
PROMPTS = [
    "Hi, I'm Maria Gonzalez, mail maria.gonzalez@example.org or call (415) 555-0132.",
    "Charge 4111 1111 1111 1111 and refund DE89 3704 0044 0532 0130 00 from 192.168.12.34.",
    "Jürgen Müller (j.mueller@beispiel.de, +49 30 901820) lives at 742 Evergreen Terrace.",
    "My SSN is 536-22-7614, please store it.",  # blocked: the policy refuses SSNs
]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def drive(url: str, detector: PiiDetector, upstream: FakeUpstream) -> Guard:
    """Send the corpus through a proxy whose audit trail goes to ``url``; returns the guard."""
    guard = Guard(load_policy("default"),
                  Settings.from_env(env={}, upstream_url=upstream.base_url, audit_sink=url),
                  detector=detector)
    with LoopbackServer(create_app(guard, upstream_url=upstream.base_url), lifespan="on") as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=CLIENT_KEY, max_retries=0,
                               timeout=30)
        for prompt in PROMPTS:
            history = [{"role": "system", "content": "Customer: Maria Gonzalez."},
                       {"role": "user", "content": prompt}]
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=history)  # type: ignore[arg-type]
                for _ in client.chat.completions.create(model="gpt-4o-mini", messages=history,  # type: ignore[arg-type]
                                                        stream=True):
                    pass
            except openai.BadRequestError:
                pass  # the SSN prompt is refused; its audit record is still written
    return guard


def cli(*args: str) -> str:
    result = CliRunner().invoke(audit, list(args))
    assert result.exit_code in (0, 1), result.output
    return result.output


def everything_a_reviewer_can_see(url: str, tmp_path: Path) -> list[str]:
    seen = [cli(*cmd, "--sink", url) for cmd in (
        ["query"], ["query", "--format", "jsonl"], ["query", "--format", "csv"], ["stats"],
        ["stats", "--format", "json"], ["tail", "-n", "100", "--no-follow"], ["verify"])]
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"export-{abs(hash(url))}.{fmt}"
        cli("export", "--sink", url, "--format", fmt, "--out", str(out))
        seen += [out.read_text("utf-8"), Path(f"{out}.manifest.json").read_text("utf-8")]
    with LoopbackServer(create_review_app(url)) as page:
        listing = httpx2.get(f"{page.url}/api/records", params={"limit": 500}).json()
        seen.append(json.dumps(listing))
        for row in listing["records"]:
            seen.append(httpx2.get(f"{page.url}/api/records/{row['id']}").text)
        seen += [httpx2.get(f"{page.url}/api/stats").text, httpx2.get(f"{page.url}/api/chart").text,
                 httpx2.get(f"{page.url}/").text]
        first = listing["records"][-1]["id"]
        seen.append(render(f"{page.url}/#record-{first}", tmp_path / f"profile-{abs(hash(url))}"))
    return seen


def stored_text(url: str) -> str:
    with open_store(url) as store:
        return "\n".join(json.dumps(r.record) for r in store.records(
            Filters(include_control=True)))


def test_no_pii_value_reaches_any_store_spool_export_page_or_log(
        detector: PiiDetector, upstream: FakeUpstream, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    spool = tmp_path / "spool"
    monkeypatch.setenv("GUARD_AUDIT_SPOOL", str(spool))
    sqlite_url = f"sqlite:///{tmp_path / 'audit.db'}"
    seen: list[str] = []
    per_store = 2 * len(PROMPTS) - 1  # the blocked prompt's stream request is refused too
    with postgres_schema() as pg_url:
        for url in (sqlite_url, pg_url):
            drive(url, detector, upstream).close()
            text = stored_text(url)
            assert text.count('"guard.request"') >= per_store
            seen.append(text)
            seen += everything_a_reviewer_can_see(url, tmp_path)
        # A store that is down: the records wait in the spool file.
        dead = drive("postgresql://guard:pw@127.0.0.1:1/audit", detector, upstream)
        dead.audit_writer.close(timeout=0.5)
        spooled = [p.read_text("utf-8") for p in spool.rglob("*.spool")]
        assert sum(s.count('"guard.request"') for s in spooled) >= per_store
        seen += spooled
    seen.append((tmp_path / "audit.db").read_bytes().decode("utf-8", "replace"))
    out = capsys.readouterr()
    seen += [out.out, out.err, caplog.text]

    everything = "\n".join(seen)
    for value in PII:
        assert value not in everything, f"{value!r} leaked"
    for placeholder in ("<PERSON_1>", "<EMAIL_ADDRESS_1>"):
        assert placeholder not in everything, "placeholders belong to the request only"
    assert "US_SSN" in everything and "EMAIL_ADDRESS" in everything  # what, never the value
