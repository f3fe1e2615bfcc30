"""``guard audit``: review, verify, export and purge the audit trail from the command line.

Every command takes ``--sink URL`` (default: ``GUARD_AUDIT``, else
``sqlite:///guard-audit.db``). Human output is rich tables on stdout, progress bars and
errors on stderr; ``--format jsonl|csv|json`` gives machine output. Mistakes a user can fix
(unknown sink, missing file, unreachable server, a date that is not one) end with one
``error:`` line and exit status 2, never a traceback; ``verify`` exits 1 when the trail is
broken.

Run it before it is registered in ``guard``: ``python -m guard.audit.cli --help``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from guard.audit.chain import HMAC_KEY_ENV, hmac_key_from_env
from guard.audit.columns import flagged_categories, rule_hits
from guard.audit.export import file_sha256, write_csv
from guard.audit.sinks import canonical_json
from guard.audit.store import AuditStore, Filters, StoredRecord
from guard.audit.timeparse import parse_when
from guard.errors import GuardError

DEFAULT_SINK = "sqlite:///guard-audit.db"
ADMIN_KEY_ENV = "GUARD_AUDIT_ADMIN_KEY"

# Piped output gets a wide line rather than rich's 80 columns: the tables have many columns.
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    sys.exit(code)


def _friendly(command: F) -> F:
    """Turn the errors a user can fix into one line and exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GuardError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        except KeyboardInterrupt:
            sys.exit(130)
        return None

    return wrapper  # type: ignore[return-value]


def _open(sink: str, *, writable: bool = False) -> AuditStore:
    from guard.audit.urls import open_store

    return open_store(sink, writable=writable)


def _when(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (only on a terminal); yields ``advance(n)``."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err, transient=True,
                        disable=not err.is_terminal)
    with progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


# -- options shared by the commands ------------------------------------------------------------

sink_option = click.option(
    "--sink", default=DEFAULT_SINK, envvar="GUARD_AUDIT", show_default=True, show_envvar=True,
    help="Audit store URL: sqlite:///FILE, postgresql://user:pw@host:port/db, jsonl://FILE.")


def filter_options(command: F) -> F:
    options = [
        click.option("--since", help="From this time: 12h, 1d, 2w, 2025-06-01, 2025-06-01T08:30Z."),
        click.option("--until", help="Before this time (same forms as --since)."),
        click.option("--decision", multiple=True,
                     type=click.Choice(["allow", "redact", "warn", "block"]),
                     help="Only this decision (repeat for several)."),
        click.option("--principal", help="Only this principal (key:..., user:..., anonymous)."),
        click.option("--policy", help="Only this policy name."),
        click.option("--policy-sha", help="Only this policy version (a prefix of its sha256)."),
        click.option("--rule", help="Only records where this rule (input or output) matched."),
        click.option("--entity", help="Only records whose input had this entity type (PERSON)."),
        click.option("--category", help="Only records flagged with this moderation category."),
        click.option("--model", help="Only this model."),
        click.option("--status", help="Only this status (ok, blocked, error, ...)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(kwargs: dict[str, Any]) -> Filters:
    return Filters(
        since=_when(kwargs.pop("since", None), "--since"),
        until=_when(kwargs.pop("until", None), "--until"),
        decisions=tuple(kwargs.pop("decision", ()) or ()),
        principal=kwargs.pop("principal", None), policy=kwargs.pop("policy", None),
        policy_sha=kwargs.pop("policy_sha", None), rule=kwargs.pop("rule", None),
        entity=kwargs.pop("entity", None), category=kwargs.pop("category", None),
        model=kwargs.pop("model", None), status=kwargs.pop("status", None),
    )


# -- rendering -------------------------------------------------------------------------------

_DECISION_STYLE = {"allow": "green", "redact": "cyan", "warn": "yellow", "block": "bold red"}


def _counts(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return ""
    return " ".join(f"{k} x{v}" for k, v in value.items())


def _money(value: Any) -> str:
    return f"${value:.6f}" if isinstance(value, int | float) else ""


def _tokens(record: dict[str, Any]) -> str:
    usage = record.get("usage")
    if not isinstance(usage, dict):
        return ""
    return f"{usage.get('prompt_tokens') or 0}+{usage.get('completion_tokens') or 0}"


def _policy(record: dict[str, Any]) -> str:
    policy = record.get("policy")
    if not isinstance(policy, dict):
        return ""
    return f"{policy.get('name')}@{str(policy.get('sha256') or '')[:8]}"


def records_table(rows: list[StoredRecord], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold")
    for name in ("#", "time (UTC)", "decision", "status", "principal", "model", "policy",
                 "entities", "moderation", "rules", "tokens", "cost", "request"):
        table.add_column(name, overflow="fold")
    for row in rows:
        r = row.record
        event = str(r.get("event") or "")
        if event.startswith("guard.audit."):
            table.add_row(str(row.id), str(r.get("ts") or ""), f"[dim]{event[12:]}[/]",
                          *[""] * 10)
            continue
        decision = str(r.get("decision") or "")
        table.add_row(
            str(row.id), str(r.get("ts") or ""),
            f"[{_DECISION_STYLE.get(decision, 'white')}]{decision}[/]",
            str(r.get("status") or ""), str(r.get("principal") or ""), str(r.get("model") or ""),
            _policy(r), _counts(r.get("input_entities")), " ".join(flagged_categories(r)),
            " ".join(f"{i}:{a}" for i, a in rule_hits(r)), _tokens(r), _money(r.get("cost_usd")),
            str(r.get("request_id") or ""),
        )
    return table


def _emit_lines(rows: Iterator[StoredRecord], fmt: str) -> int:
    n = 0
    if fmt == "csv":
        return write_csv(sys.stdout, (row.record for row in rows))
    for row in rows:
        sys.stdout.write(canonical_json(row.record) + "\n")
        n += 1
    sys.stdout.flush()
    return n


# -- the group ---------------------------------------------------------------------------------


@click.group("audit", context_settings={"help_option_names": ["-h", "--help"]})
def audit() -> None:
    """Review the audit trail: query, stats, tail, export, verify, purge, serve.

    \b
    guard audit stats --since 7d
    guard audit query --decision block --since 1d
    guard audit verify
    guard audit serve --port 8090
    """


@audit.command()
@sink_option
@filter_options
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table",
              show_default=True)
@click.option("--limit", type=click.IntRange(min=1),
              help="At most this many records (table: default 50, newest first; jsonl/csv: all, "
                   "oldest first).")
@_friendly
def query(sink: str, fmt: str, limit: int | None, **kwargs: Any) -> None:
    """Find records: who sent what kind of data, what was decided, under which policy.

    \b
    guard audit query --decision block --since 1d
    guard audit query --entity US_SSN --policy healthcare --format csv > ssn.csv
    """
    filters = _filters(kwargs)
    with _open(sink) as store:
        if fmt != "table":
            _emit_lines(store.records(filters, limit=limit), fmt)
            return
        shown = limit or 50
        rows = list(store.records(filters, limit=shown, newest_first=True))
        total = store.count(filters)
        out.print(records_table(rows))
        note = f"{len(rows)} of {total} matching records, newest first"
        if total > len(rows):
            note += "; --limit N shows more, --format jsonl|csv gives all"
        err.print(note, style="dim", highlight=False)


@audit.command()
@sink_option
@filter_options
@click.option("-n", "--lines", default=10, show_default=True, type=click.IntRange(min=0),
              help="Records to show before following.")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing new records as they are written.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="Seconds between polls while following.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl"]), default="table",
              show_default=True)
@_friendly
def tail(sink: str, lines: int, follow: bool, interval: float, fmt: str, **kwargs: Any) -> None:
    """Show the newest records, then follow new ones (Ctrl-C stops)."""
    filters = Filters(**{**_filters(kwargs).__dict__, "include_control": True})
    with _open(sink) as store:
        rows = list(store.records(filters, limit=lines, newest_first=True))[::-1] if lines else []
        last = rows[-1].id if rows else store.last_id()
        _print_tail(rows, fmt)
        # PostgreSQL hands out row ids before commit, so a row with a smaller id can appear
        # after a larger one (two writers): look back a window and skip ids already shown.
        seen = {r.id for r in rows}
        while follow:
            time.sleep(interval)
            fresh = [r for r in store.records(filters, after_id=max(0, last - 2_000))
                     if r.id not in seen]
            if fresh:
                _print_tail(fresh, fmt)
                seen.update(r.id for r in fresh)
                last = max(last, *(r.id for r in fresh))
                if len(seen) > 20_000:
                    seen = {i for i in seen if i > last - 2_000}


def _print_tail(rows: list[StoredRecord], fmt: str) -> None:
    if fmt == "jsonl":
        _emit_lines(iter(rows), "jsonl")
        return
    for row in rows:
        r = row.record
        event = str(r.get("event") or "")
        if event.startswith("guard.audit."):
            out.print(f"[dim]{r.get('ts')}  #{row.id}  {event}[/]", highlight=False)
            continue
        decision = str(r.get("decision") or "")
        parts = [str(r.get("ts") or ""), f"#{row.id}",
                 f"[{_DECISION_STYLE.get(decision, 'white')}]{decision:<6}[/]",
                 str(r.get("status") or ""), str(r.get("principal") or ""),
                 str(r.get("model") or ""), _policy(r), _counts(r.get("input_entities")),
                 " ".join(f"rule:{i}={a}" for i, a in rule_hits(r)),
                 " ".join(f"flag:{c}" for c in flagged_categories(r)),
                 _money(r.get("cost_usd")), str(r.get("request_id") or "")]
        out.print("  ".join(p for p in parts if p), highlight=False)


@audit.command()
@sink_option
@filter_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@_friendly
def stats(sink: str, fmt: str, **kwargs: Any) -> None:
    """Counts by decision, entity type, moderation category and rule; tokens and cost by
    principal and by day."""
    filters = _filters(kwargs)
    with _open(sink) as store:
        result = store.stats(filters)
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, sort_keys=True))
        return
    total = result.requests or 1

    def table(title: str, *columns: str) -> Table:
        t = Table(title=title, title_justify="left", header_style="bold")
        for i, column in enumerate(columns):
            t.add_column(column, justify="left" if i == 0 else "right")
        return t

    decisions = table(f"Decisions ({result.requests} requests)", "decision", "requests", "share")
    for decision, n in result.decisions.items():
        decisions.add_row(f"[{_DECISION_STYLE.get(decision, 'white')}]{decision}[/]", str(n),
                          f"{100 * n / total:.1f}%")
    out.print(decisions)
    entities = table("Entity types in inputs", "entity", "requests", "occurrences")
    for name, slot in result.entities.items():
        entities.add_row(name, str(slot["requests"]), str(slot["occurrences"]))
    categories = table("Moderation categories flagged", "category", "requests")
    for name, n in result.categories.items():
        categories.add_row(name, str(n))
    rules = table("Rules", "rule", "hits", "actions")
    for name, actions in result.rules.items():
        rules.add_row(name, str(sum(actions.values())),
                      ", ".join(f"{a} {n}" for a, n in actions.items()))
    principals = table("By principal", "principal", "requests", "prompt tokens",
                       "completion tokens", "cost (USD)")
    for p in result.principals:
        principals.add_row(str(p["principal"]), str(p["requests"]), str(p["prompt_tokens"]),
                           str(p["completion_tokens"]), f"{p['cost_usd']:.6f}")
    days = table("By day (UTC)", "day", "requests", "blocked", "prompt tokens",
                 "completion tokens", "cost (USD)")
    for d in result.days:
        days.add_row(str(d["day"]), str(d["requests"]), str(d["blocked"]), str(d["prompt_tokens"]),
                     str(d["completion_tokens"]), f"{d['cost_usd']:.6f}")
    for part in (entities, categories, rules, principals, days):
        if part.row_count:
            out.print(part)


@audit.command()
@sink_option
@click.option("--since", help="From this time (12h, 1d, 2025-06-01, ...).")
@click.option("--until", help="Before this time.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; the manifest goes beside it as FILE.manifest.json.")
@_friendly
def export(sink: str, since: str | None, until: str | None, fmt: str, out_path: Path) -> None:
    """Export a time range for an auditor, with a manifest of chain heads and the file's sha256.

    \b
    guard audit export --since 2025-01-01 --until 2025-04-01 --out q1.jsonl
    guard audit verify --sink jsonl://q1.jsonl --manifest q1.jsonl.manifest.json
    """
    from guard.audit.export import export as run_export

    start, end = _when(since, "--since"), _when(until, "--until")
    with _open(sink) as store:
        total = store.count(Filters(since=start, until=end, include_control=True))
        with _progress("exporting", total) as advance:
            result = run_export(store, out_path, fmt=fmt, since=start, until=end,
                                progress=advance)
    manifest = result.manifest
    err.print(f"wrote {manifest['records']} records ({manifest['requests']} requests, "
              f"{len(manifest['chains'])} chains) to {result.path}\n"
              f"manifest {result.manifest_path}  sha256 {manifest['sha256']}", highlight=False)


@audit.command()
@sink_option
@click.option("--manifest", "manifest_path", type=click.Path(exists=True, dir_okay=False,
                                                             path_type=Path),
              help="An export's manifest: checks the file's sha256 and each chain's head.")
@click.option("--key-env", default=HMAC_KEY_ENV, show_default=True,
              help="Environment variable holding the HMAC key the chains were written with.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@_friendly
def verify(sink: str, manifest_path: Path | None, key_env: str, fmt: str) -> None:
    """Check every hash chain; name the first record edited, deleted, inserted or reordered.

    Exits 0 when every chain is intact, 1 when one is not, 2 when the store cannot be read.
    """
    from guard.audit.verify import Problem, verify_store

    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path else None
    key = hmac_key_from_env({HMAC_KEY_ENV: os.environ.get(key_env, "")})
    with _open(sink) as store:
        total = store.count_rows()
        with _progress("verifying", total) as advance:
            report = verify_store(store, key=key, manifest=manifest, progress=advance)
    if manifest and manifest_path:
        _check_manifest_file(sink, manifest, report.problems, Problem)
    if fmt == "json":
        click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        _print_verify(report)
    if not report.ok:
        sys.exit(1)


def _check_manifest_file(sink: str, manifest: dict[str, Any], problems: list[Any],
                         problem: type[Any]) -> None:
    if not sink.startswith("jsonl://") or not manifest.get("sha256"):
        return
    from guard.audit.urls import _path, _split

    scheme, rest = _split(sink)
    path = _path(sink, scheme, rest)
    if path.name == manifest.get("file") and file_sha256(path) != manifest["sha256"]:
        problems.insert(0, problem("edited", None, None, None,
                                   f"{path.name} differs from the manifest (sha256)"))


def _print_verify(report: Any) -> None:
    table = Table(title=f"Chains in {report.store}", title_justify="left", header_style="bold")
    for name in ("chain", "rows", "seq", "alg", "start", "state"):
        table.add_column(name)
    for chain in report.chains:
        state = chain.state
        style = "green" if chain.problem is None else "bold red"
        seqs = "" if chain.first_seq is None else f"{chain.first_seq}..{chain.last_seq}"
        table.add_row(chain.chain, str(chain.rows), seqs, chain.alg or "", chain.start,
                      f"[{style}]{state}[/]")
    out.print(table)
    if report.legacy_rows:
        out.print(f"{report.legacy_rows} rows from before the store had chains (not verifiable)",
                  style="yellow", highlight=False)
    if report.ok:
        out.print(f"[bold green]OK[/]: {report.rows} rows in {len(report.chains)} chains, "
                  "none edited, deleted, inserted or reordered", highlight=False)
        return
    first = report.first_problem
    for problem in report.problems:
        where = []
        if problem.chain:
            where.append(f"chain {problem.chain}")
        if problem.seq is not None:
            where.append(f"seq {problem.seq}")
        if problem.row_id is not None:
            where.append(f"row {problem.row_id}")
        marker = "FIRST " if problem is first else ""
        out.print(f"[bold red]{marker}{problem.kind.upper()}[/] {', '.join(where)}: "
                  f"{problem.message}", highlight=False)
    out.print(f"[bold red]FAILED[/]: {len(report.problems)} problem(s)", highlight=False)


@audit.command()
@sink_option
@click.option("--before", required=True, help="Delete records older than this (2025-01-01, 90d).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--key-env", default=HMAC_KEY_ENV, show_default=True,
              help="Environment variable holding the HMAC key for the purge event's chain.")
@_friendly
def purge(sink: str, before: str, yes: bool, key_env: str) -> None:
    """Retention: delete records older than --before, leaving a chained purge event that
    explains the gap (so verify still passes)."""
    from guard.audit.purge import purge as run_purge

    cutoff = _when(before, "--before")
    assert cutoff is not None
    key = hmac_key_from_env({HMAC_KEY_ENV: os.environ.get(key_env, "")})
    with _open(sink, writable=True) as store:
        older = store.count(Filters(until=cutoff))
        if not yes and not click.confirm(
                f"Delete about {older} request records older than {cutoff} from {store.label}?",
                err=True):
            _fail("nothing purged", code=1)
        with _progress("purging", None):
            result = run_purge(store, cutoff, key=key)
    out.print(f"purged {result.deleted + result.unchained_deleted} records older than "
              f"{cutoff} from {len([c for c in result.chains if c['deleted']])} chains; "
              f"recorded as purge event in chain {result.event_chain}", highlight=False)


@audit.command()
@sink_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@_friendly
def serve(sink: str, host: str, port: int) -> None:
    """Serve the read-only review page (set GUARD_AUDIT_ADMIN_KEY to require a key)."""
    import uvicorn

    from guard.audit.web import create_review_app

    with _open(sink) as store:  # fail now, with a clear message, if it cannot be read
        label = store.label
    key = os.environ.get(ADMIN_KEY_ENV) or None
    if key is None and host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] serving on {host} without {ADMIN_KEY_ENV}: anyone who "
                  "can reach it can read the trail", highlight=False)
    app = create_review_app(sink, admin_key=key)
    err.print(f"review page for {label} on http://{host}:{port}/"
              + (" (admin key required)" if key else ""), highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    audit()
