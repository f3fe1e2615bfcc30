"""The official Node SDK (`openai` on npm) streams through the proxy: placeholders restored,
rules enforced, tool-call arguments restored, usage delivered.

The SDK is installed from the npm registry once into a cache outside the repository
(``$GUARD_TEST_CACHE`` or ``~/.cache/guard-tests``). Only a machine without ``node`` skips
this test; CI installs Node first (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from guard.testing import FakeUpstream
from tests.integration.conftest import ProxyFactory
from tests.support.sdk import assert_no_pii, records

SDK = "openai@6"
"""The newest major release whose engines include the Node on Debian bookworm (20)."""
SCRIPT = Path(__file__).with_name("node") / "stream_chat.cjs"

POLICY = """
version: 1
name: node-sdk
moderation: {input: null}
output:
  streaming: {window_chars: 32, overlap_chars: 12}
  rules:
    - id: competitor
      when: {keywords: [globex]}
      action: block
      message: Let's talk about our own products.
"""


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """``node_modules`` holding the official SDK (installed on first use, then reused)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed (CI installs them: see .ci/run)")
    cache = Path(os.environ.get("GUARD_TEST_CACHE") or Path.home() / ".cache" / "guard-tests")
    target = cache / f"node-{SDK.replace('@', '-')}"
    if not (target / "node_modules" / "openai" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        # Install beside the target, then move it in: an interrupted install leaves no
        # half-filled cache behind.
        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".installing-"))
        subprocess.run(["npm", "install", "--prefix", str(staging), SDK, "--no-audit",
                        "--no-fund", "--loglevel=error"], check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target / "node_modules"


def run_node(node_modules: Path, base_url: str) -> dict[str, Any]:
    done = subprocess.run(["node", str(SCRIPT), base_url], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NODE_PATH": str(node_modules)})
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_node_sdk_streams_with_restoration_and_rules(
        node_sdk: Path, proxy: ProxyFactory, upstream: FakeUpstream) -> None:
    upstream.stream_chunk_chars = 3  # every placeholder arrives split over several chunks
    base_url, guard, sink = proxy(POLICY)
    result = run_node(node_sdk, base_url)

    restored = result["restored"]
    assert restored["text"].endswith("Your last message was: Please write to "
                                     "maria.gonzalez@example.org")
    assert not any("<" in piece for piece in restored["pieces"]), "no placeholder fragment"
    assert restored["finishes"] == ["stop"]
    assert restored["usage"]["completion_tokens"] > 0

    blocked = result["blocked"]
    assert "globex" not in blocked["text"].lower()
    assert blocked["text"].endswith("Let's talk about our own products.")
    assert blocked["finishes"] == ["content_filter"]

    tool = result["tool"]
    assert tool["names"] == ["send_email"] and tool["finishes"] == ["tool_calls"]
    assert json.loads(tool["args"]) == {"to": "mail maria.gonzalez@example.org"}

    sent = [r.body for r in upstream.chat_requests]
    assert len(sent) == 3
    assert_no_pii(sent, values=["maria.gonzalez@example.org"])
    audit = records(guard, sink, at_least=3)
    assert [r["decision"] for r in audit] == ["redact", "block", "redact"]
    assert all(r["stream"] for r in audit)
    assert audit[1]["output_rules"] == [{"id": "competitor", "action": "block"}]
    assert_no_pii(audit, values=["maria.gonzalez@example.org", "sk-node-test"])
