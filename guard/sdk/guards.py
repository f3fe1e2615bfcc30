"""Which :class:`~guard.engine.Guard` an SDK call uses: per policy and per API base, cached.

A wrapped client's moderation calls go to *that client's* base URL with *its* key (unless
the policy names another endpoint), and ``wrap``/``protect`` may name their own policy. So
from the Guard the application built (the *parent*) the SDK adapter derives child guards,
one per (policy, base URL), built once and cached:

- the child has the parent's settings with ``upstream_url`` = the client's base and no
  server key (so moderation uses the key of the client making the call);
- the child writes through the parent's audit writer: one trail and one hash chain per
  Guard the application built, whatever policy or endpoint a call used (the record names
  its policy);
- the NER detector is the process-wide one (:func:`guard.pii.get_detector`), so children
  are cheap.

>>> source = GuardSource(parent=None, policy=None)   # None: the process default guard
>>> guard = source.resolve("https://api.openai.com/v1")  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from guard.engine import Guard
from guard.policy import Policy, load_policy

PolicyLike = str | Path | Policy
"""A shipped pack name, a policy file path, or a loaded :class:`~guard.policy.Policy`."""

_lock = threading.Lock()
_children: weakref.WeakKeyDictionary[Guard, dict[tuple[object, ...], Guard]] = (
    weakref.WeakKeyDictionary())
_default: Guard | None = None


def load(policy: PolicyLike | None) -> Policy | None:
    """Load a policy now, so a bad name fails where it is written, not at the first call."""
    if policy is None or isinstance(policy, Policy):
        return policy
    return load_policy(policy)


@dataclass(frozen=True, eq=False)
class GuardSource:
    """A parent guard (``None``: the process default) and an optional policy override."""

    parent: Guard | None = None
    policy: Policy | None = None

    def cached(self, base_url: str) -> Guard | None:
        """The guard for ``base_url`` if it needs no building (fast path for event loops)."""
        parent = self.parent if self.parent is not None else _default
        if parent is None:
            return None
        if _reuses_parent(parent, self.policy, base_url):
            return parent
        with _lock:
            return _children.get(parent, {}).get(_key(self.policy, base_url))

    def resolve(self, base_url: str) -> Guard:
        """The guard for calls against ``base_url`` (built on first use; may load a model)."""
        parent = self.parent if self.parent is not None else default_guard()
        return derive(parent, policy=self.policy, base_url=base_url)


def derive(parent: Guard, *, policy: Policy | None = None, base_url: str | None = None) -> Guard:
    """``parent`` itself when nothing differs, else a cached child guard (see module doc)."""
    base = (base_url or parent.settings.upstream_url).rstrip("/")
    if _reuses_parent(parent, policy, base):
        return parent
    key = _key(policy, base)
    with _lock:
        children = _children.setdefault(parent, {})
        child = children.get(key)
        if child is None:
            child = children[key] = _build(parent, policy, base)
        return child


def default_guard() -> Guard:
    """The process default guard for ``guard.wrap``/``guard.protect``, built on first use.

    Default policy, settings from the environment (``GUARD_AUDIT``, ``GUARD_UPSTREAM_URL``,
    ...). Building it loads the NER model, so the first call pays for that once.
    """
    global _default
    with _lock:
        if _default is None:
            _default = Guard.from_policy("default")
        return _default


def set_default_guard(guard: Guard | None) -> Guard | None:
    """Make ``guard`` the process default (``None``: build one again on next use).

    Returns the previous default, which is not closed: that is the caller's to do.

    >>> previous = set_default_guard(Guard.from_policy("payments"))  # doctest: +SKIP
    """
    global _default
    with _lock:
        previous, _default = _default, guard
        return previous


def _reuses_parent(parent: Guard, policy: Policy | None, base: str) -> bool:
    return (policy is None and base.rstrip("/") == parent.settings.upstream_url
            and parent.settings.api_key is None)


def _key(policy: Policy | None, base: str) -> tuple[object, ...]:
    if policy is None:
        return (None, base.rstrip("/"))
    # Same text, same behaviour; a policy built in code has no digest, so it is its own key.
    return (policy.sha256 or id(policy), base.rstrip("/"))


def _build(parent: Guard, policy: Policy | None, base: str) -> Guard:
    loaded = policy or parent.policy
    settings = replace(parent.settings, upstream_url=base, api_key=None, warm_up=False)
    same_model = settings.spacy_model is not None or loaded.pii.model == parent.policy.pii.model
    child = Guard(loaded, settings, detector=parent.detector if same_model else None,
                  audit_sink=_Discard())
    # Guard.__init__ always opens its own writer; the child writes through its parent's.
    child.audit_writer.close()
    child.audit_writer, child.audit = parent.audit_writer, parent.audit
    child.audit_sink_url = parent.audit_sink_url
    child.observers = parent.observers  # metrics count the child's calls with the parent's
    return child


class _Discard:
    """The sink of the writer a child guard is born with and closes at once."""

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        pass

    def close(self) -> None:
        pass
