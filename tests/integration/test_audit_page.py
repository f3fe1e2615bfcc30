"""The review page, in a real headless browser (Debian's chromium), over both stores."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from guard.audit import AuditWriter, open_sink
from guard.audit.web import create_review_app
from guard.testing import LoopbackServer
from tests.support.audit import record, spool_dir, store_url

__all__ = ["spool_dir", "store_url"]

ADMIN_KEY = "review-key-for-tests"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def render(url: str, profile: Path) -> str:
    """The DOM after the page's scripts ran (virtual time lets its fetches finish)."""
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def filled(store_url: str, spool_dir: object) -> str:
    writer = AuditWriter(open_sink(store_url))
    for i in range(60):
        writer.emit(record(i))
    writer.close()
    return store_url


@pytest.fixture
def page(filled: str) -> Iterator[str]:
    with LoopbackServer(create_review_app(filled, admin_key=ADMIN_KEY)) as server:
        yield server.url


def test_the_page_shows_the_records_a_chart_and_a_records_detail(
        page: str, tmp_path: Path) -> None:
    target = httpx2.get(f"{page}/api/records", params={"request_id": "req-00043"},
                        headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["records"][0]

    dom = render(f"{page}/?key={ADMIN_KEY}&bucket=day#record-{target['id']}", tmp_path / "profile")

    rows = re.findall(r'<tr data-id="(\d+)" data-request-id="([^"]+)" data-decision="(\w+)"', dom)
    assert len(rows) == 60
    assert rows[0][1] == "req-00059" and rows[-1][1] == "req-00000"  # newest first
    bars = re.findall(r'<rect class="bar bar-(\w+)"[^>]*data-bucket="([^"]+)"[^>]*'
                      r'data-decision="(\w+)" data-count="(\d+)"', dom)
    assert {b[0] for b in bars} == {"allow", "redact", "warn", "block"}
    assert sum(int(b[3]) for b in bars) == 60
    assert {b[1] for b in bars} == {"2025-06-01", "2025-06-02", "2025-06-03"}
    detail = dom[dom.index('<aside id="detail"'):]
    detail = detail[:detail.index("</aside>")]
    assert f"Record #{target['id']}" in detail
    assert "req-00043" in detail and "block" in detail and "US_SSN" in detail
    assert "120.5 ms" in detail and "$0.000045" in detail
    assert 'class="error"' not in dom or 'id="error" class="error" hidden' in dom


def test_filters_in_the_url_narrow_table_and_chart(page: str, tmp_path: Path) -> None:
    dom = render(f"{page}/?key={ADMIN_KEY}&decision=warn&since=2025-06-02", tmp_path / "profile")

    decisions = re.findall(r'<tr data-id="\d+" data-request-id="[^"]+" data-decision="(\w+)"', dom)
    assert decisions and set(decisions) == {"warn"}
    assert len(decisions) == len([i for i in range(24, 60) if i % 4 == 2])
    bars = set(re.findall(r'<rect class="bar bar-(\w+)"', dom))
    assert bars == {"warn"}


def test_the_api_wants_the_admin_key_and_the_page_says_so_without_it(
        page: str, tmp_path: Path) -> None:
    assert httpx2.get(f"{page}/api/records").status_code == 401
    assert httpx2.get(f"{page}/api/records", params={"key": "wrong"}).status_code == 401
    ok = httpx2.get(f"{page}/api/records", params={"key": ADMIN_KEY})
    assert ok.status_code == 200 and ok.json()["total"] == 60
    assert "default-src 'none'" in ok.headers["content-security-policy"]
    assert ok.headers["referrer-policy"] == "no-referrer"

    dom = render(f"{page}/", tmp_path / "profile")
    assert "admin key required" in dom
    assert "<tr data-id" not in dom


def test_the_api_answers_bad_input_clearly(page: str) -> None:
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    bad = httpx2.get(f"{page}/api/records", params={"since": "soon"}, headers=auth)
    assert bad.status_code == 400 and "is not a time" in bad.json()["error"]
    assert httpx2.get(f"{page}/api/records/999999", headers=auth).status_code == 404
    assert httpx2.get(f"{page}/api/chart", params={"bucket": "year"}, headers=auth).status_code == 400
    stats = httpx2.get(f"{page}/api/stats", headers=auth).json()
    assert stats["requests"] == 60
    assert httpx2.post(f"{page}/api/records", headers=auth).status_code == 405  # read-only
