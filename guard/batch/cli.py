"""``guard batch redact | restore | keygen``: the Batch API's files, guarded offline.

Registered on the main command in ``guard/cli.py``. Errors a user can fix (a bad line, no
key, the wrong key) are one clear message and exit status 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from guard.batch.crypto import batch_key
from guard.batch.files import read_lines, sibling
from guard.batch.lines import parse_requests, parse_results
from guard.batch.maps import BatchMaps, write_private
from guard.batch.pool import DEFAULT_CONCURRENCY
from guard.batch.redact import redact_batch
from guard.batch.report import LineReport, Summary, summarise
from guard.batch.restore import restore_results
from guard.errors import GuardError

err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

PROGRESS_FROM_LINES = 50
"""Files at least this long get a progress bar."""


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(2)


@click.group()
def batch() -> None:
    """Guard OpenAI Batch API files: redact the input file, restore the results.

    \b
    export GUARD_BATCH_KEY=$(guard batch keygen)
    guard batch redact requests.jsonl -o upload.jsonl        # + upload.maps, upload.report.jsonl
    guard batch restore results.jsonl --maps upload.maps -o answers.jsonl
    """


_policy_option = click.option(
    "--policy", "policy_ref", default=None,
    help="Policy file or shipped policy name [default: $GUARD_POLICY or default].")
_concurrency_option = click.option(
    "--concurrency", default=DEFAULT_CONCURRENCY, show_default=True, type=click.IntRange(1, 64),
    help="Lines checked at once.")


@batch.command("redact")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The redacted batch input file to upload.")
@click.option("--maps", "maps_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Encrypted pseudonym maps [default: OUTPUT with .maps].")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Per-line report, JSONL [default: OUTPUT with .report.jsonl].")
@_policy_option
@_concurrency_option
def redact(source: Path, output: Path, maps_path: Path | None, report_path: Path | None,
           policy_ref: str | None, concurrency: int) -> None:
    """Apply the input pipeline to every request line of the batch input file SOURCE.

    Lines that pass are written to OUTPUT with their personal data pseudonymised; blocked
    lines are left out and reported. The pseudonym maps are written encrypted with
    $GUARD_BATCH_KEY (without a key nothing is written).
    """
    maps_path = maps_path or sibling(output, ".maps")
    report_path = report_path or sibling(output, ".report.jsonl")
    try:
        key = batch_key()
        requests = parse_requests(read_lines(source), source=str(source))
        guard = _guard(policy_ref)
    except GuardError as exc:
        _fail(str(exc))
        return
    try:
        with _progress(len(requests), "Redacting") as advance:
            outcome = _run(redact_batch(guard, requests, api_key=_api_key(),
                                        progress=advance, concurrency=concurrency))
        try:
            outcome.maps.save(maps_path, key)
            _write(output, outcome.jsonl())
            _write(report_path, _report_jsonl(outcome.reports))
        except BaseException:
            outcome.finish("error")
            raise
        outcome.finish()
    finally:
        guard.close()
    _print_summary("Redacted", str(source), outcome.ref, summarise(outcome.reports), guard)
    err.print(f"Wrote {output} ({len(outcome.lines)} line(s) to upload), encrypted maps "
              f"{maps_path}, report {report_path}.", highlight=False)
    if guard.policy.mode == "monitor":
        err.print("[yellow]Policy mode is monitor: lines were checked but written unaltered.[/]")


@batch.command("restore")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--maps", "maps_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The encrypted maps written by `guard batch redact`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The restored results.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Per-line report, JSONL [default: OUTPUT with .report.jsonl].")
@click.option("--withheld/--no-withheld", default=True, show_default=True,
              help="Add an error line for each request Guard withheld at redaction.")
@_policy_option
@_concurrency_option
def restore(source: Path, maps_path: Path, output: Path, report_path: Path | None,
            withheld: bool, policy_ref: str | None, concurrency: int) -> None:
    """Check every result line of SOURCE (a batch output file) and restore its placeholders.

    Answers the output rules block are replaced as the policy says and reported.
    """
    report_path = report_path or sibling(output, ".report.jsonl")
    try:
        key = batch_key()
        maps = BatchMaps.load(maps_path, key)
        results = parse_results(read_lines(source), source=str(source))
        guard = _guard(policy_ref)
    except GuardError as exc:
        _fail(str(exc))
        return
    if maps.policy.get("sha256") != guard.policy.sha256:
        err.print(f"[yellow]note:[/] the batch was redacted under policy "
                  f"{maps.policy.get('name')!r} ({str(maps.policy.get('sha256'))[:12]}); its "
                  f"results are checked under {guard.policy.name!r} "
                  f"({guard.policy.sha256[:12]}).", highlight=False)
    try:
        with _progress(len(results), "Restoring") as advance:
            outcome = _run(restore_results(guard, results, maps, api_key=_api_key(),
                                           include_withheld=withheld, progress=advance,
                                           concurrency=concurrency, source=str(source)))
    finally:
        guard.close()
    _write(output, outcome.jsonl())
    _write(report_path, _report_jsonl(outcome.reports))
    _print_summary("Restored", str(source), maps.ref, summarise(outcome.reports), guard)
    if outcome.missing:
        err.print(f"[yellow]{outcome.missing} request(s) of the batch have no result here "
                  "(look in the batch's error file).[/]", highlight=False)
    err.print(f"Wrote {output} and report {report_path}.", highlight=False)


@batch.command("keygen")
def keygen() -> None:
    """Print a new random key for GUARD_BATCH_KEY (or a file named by GUARD_BATCH_KEY_FILE)."""
    click.echo(secrets.token_urlsafe(32))


def _run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro
    try:
        return asyncio.run(main())
    except GuardError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def _guard(policy_ref: str | None) -> Any:
    from guard.engine import Guard
    from guard.proxy import is_offline

    settings: dict[str, Any] = {"moderation_provider": "local"} if is_offline() else {}
    if settings:
        err.print("[yellow]offline:[/] no OPENAI_API_KEY and no GUARD_UPSTREAM_URL, so "
                  "moderation uses the local classifier.", highlight=False)
    return Guard.from_policy(policy_ref or os.environ.get("GUARD_POLICY") or "default", **settings)


def _api_key() -> str | None:
    return os.environ.get("OPENAI_API_KEY") or None


def _write(path: Path, data: bytes) -> None:
    write_private(path, data)


def _report_jsonl(reports: list[LineReport]) -> bytes:
    return "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in reports).encode()


@contextmanager
def _progress(total: int, verb: str) -> Iterator[Callable[[int], None] | None]:
    if total < PROGRESS_FROM_LINES:
        yield None
        return
    columns = (TextColumn(f"{verb} lines"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(verb, total=total)
        yield lambda n: progress.advance(task, n)


def _print_summary(verb: str, source: str, ref: str, summary: Summary, guard: Any) -> None:
    table = Table(title=f"{verb} {source} — batch {ref}, policy {guard.policy.name}",
                  title_justify="left")
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("lines", str(summary.lines))
    colours = {"block": "red", "redact": "cyan", "warn": "yellow", "upstream_error": "red"}
    for decision, count in sorted(summary.decisions.items()):
        colour = colours.get(decision, "green")
        table.add_row(f"[{colour}]{decision}[/]", str(count))
    for code, count in sorted(summary.codes.items()):
        table.add_row(f"  blocked: {code}", str(count))
    for label, count in sorted(summary.entities.items()):
        table.add_row(f"  entity {label}", str(count))
    for rule, count in sorted(summary.rules.items()):
        table.add_row(f"  rule {rule}", str(count))
    err.print(table)
