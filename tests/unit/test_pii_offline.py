"""No network, ever: domain checks use tldextract's bundled suffix list."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from guard.pii import get_detector
from guard.pii.offline import OFFLINE_EXTRACTOR, make_offline_extractor
from guard.pii.recognizers import OfflineEmailRecognizer, build_recognizers

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture
def refuse_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Make every non-loopback connection or name lookup fail, and record the attempt."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            attempts.append(("connect", address))
            raise ConnectionRefusedError(f"test refuses connection to {address}")
        return real_connect(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if address[0] not in LOOPBACK:
            attempts.append(("create_connection", address))
            raise ConnectionRefusedError(f"test refuses connection to {address}")
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOOPBACK and host is not None:
            attempts.append(("getaddrinfo", host))
            raise socket.gaierror(f"test refuses lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def test_no_connection_attempted_while_detecting_emails_and_urls(
    refuse_network: list[Any],
) -> None:
    detector = get_detector()
    text = (
        "Write to ana@example.co.uk or ana.silva@correio.com.br, see https://example.org/a "
        "and www.exemplo.pt, or mail bob@intranet.invalidtld."
    )
    spans = detector.analyze(text, {"EMAIL_ADDRESS", "URL"}, min_score=0.5)
    labels = {text[s.start : s.end]: s.label for s in spans}
    assert labels["ana@example.co.uk"] == "EMAIL_ADDRESS"
    assert labels["ana.silva@correio.com.br"] == "EMAIL_ADDRESS"
    assert labels["https://example.org/a"] == "URL"
    assert "bob@intranet.invalidtld" not in labels  # no public suffix: not an address
    assert refuse_network == []


def test_a_fresh_extractor_loads_the_bundled_list_without_network(
    refuse_network: list[Any],
) -> None:
    extractor = make_offline_extractor()
    assert extractor("mail.example.co.uk").suffix == "co.uk"
    assert refuse_network == []


def test_offline_extractor_never_fetches_and_never_caches_on_disk() -> None:
    assert OFFLINE_EXTRACTOR.suffix_list_urls == ()
    assert OFFLINE_EXTRACTOR.fallback_to_snapshot
    assert not OFFLINE_EXTRACTOR._cache.enabled


def test_guard_uses_the_offline_email_recognizer_only() -> None:
    email = [r for r in build_recognizers() if "EMAIL_ADDRESS" in r.supported_entities]
    assert len(email) == 1 and isinstance(email[0], OfflineEmailRecognizer)


def test_detection_writes_no_suffix_list_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLDEXTRACT_CACHE", str(tmp_path / "tld"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    extractor = make_offline_extractor()
    assert extractor("a@b.example.com").domain == "example"
    assert list(tmp_path.iterdir()) == []
