"""Domain checks that never touch the network or the disk.

Presidio's ``EmailRecognizer.validate_result`` calls ``tldextract.extract``, whose module-level
extractor downloads the Public Suffix List on first use and caches it under ``~/.cache``.
Offline that stalls or fails the first request, and a proxy must open no connection but its
upstream's. Guard's recognizers use :data:`OFFLINE_EXTRACTOR` instead: the suffix list
snapshot bundled with tldextract, no fetch (``suffix_list_urls=()``), no cache directory.
Guard does not patch tldextract's global, so it never changes other libraries' behaviour.
"""

from __future__ import annotations

import tldextract


def make_offline_extractor() -> tldextract.TLDExtract:
    """A ``TLDExtract`` that reads only the bundled suffix list snapshot."""
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


OFFLINE_EXTRACTOR = make_offline_extractor()
"""Shared by every recognizer; loads the snapshot lazily on first use (thread-safe enough:
a concurrent first use parses the snapshot twice and keeps one)."""


def has_public_suffix(value: str) -> bool:
    """Whether ``value`` (an email address, host name or URL) ends in a known public suffix.

    >>> has_public_suffix("jane@example.co.uk"), has_public_suffix("jane@host.invalidtld")
    (True, False)
    """
    return OFFLINE_EXTRACTOR(value).fqdn != ""
