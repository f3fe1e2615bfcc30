"""The ``guard`` command: scan and classify text, serve, check and test policies.

Human output goes through rich; machine output (``--format json|spans``) is plain JSON on
stdout so it can be piped. Errors say what to do and exit non-zero; no tracebacks for
mistakes a user can fix.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.table import Table

from guard.errors import ConfigError, GuardError, PolicyError

err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="guard")
def main() -> None:
    """Guard: PII pseudonymisation, moderation and output rules for OpenAI calls."""


# -- guard scan ----------------------------------------------------------------------------


@main.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--policy", "policy_ref", default="default", show_default=True,
              help="Policy file, or the name of a shipped policy.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "spans"]), default="text",
              show_default=True,
              help="text: redacted text + findings table; json: one JSON object; "
                   "spans: JSON lines in ({\"text\": ...}), one span list per line out.")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="Processes analysing --format spans input (default: one per CPU core).")
def scan(source: TextIO, policy_ref: str, fmt: str, processes: int | None) -> None:
    """Redact personal data in SOURCE (a file, or stdin) and show what was found.

    \b
    echo "Call Jane Doe at +1 415 555 0100" | guard scan
    guard scan notes.txt --policy healthcare --format json
    """
    from guard.policy import load_policy

    try:
        policy = load_policy(policy_ref)
    except PolicyError as exc:
        _fail(str(exc))
        return
    if fmt == "spans":
        from guard.pii import get_detector
        from guard.pii.spans import write_spans

        detector = get_detector(policy.pii.model)
        # Forked before any thread starts, the workers share the model already loaded.
        detector.use_processes((processes or os.cpu_count() or 1) - 1, start_method="fork")
        try:
            write_spans(source, sys.stdout, detector, policy.pii.detected_entities,
                        policy.pii.min_score)
        finally:
            detector.use_processes(0)
        return
    text = source.read()
    verdict = asyncio.run(_scan_text(policy, text))
    redacted = verdict.body["messages"][0]["content"]
    findings = [
        {"start": f.start, "end": f.end, "label": f.label, "score": f.score,
         "action": f.action, "replacement": f.replacement}
        for f in verdict.findings
    ]
    if fmt == "json":
        click.echo(json.dumps({"decision": verdict.decision, "code": verdict.code,
                               "redacted": redacted if not verdict.blocked else None,
                               "entities": dict(verdict.entities), "findings": findings},
                              ensure_ascii=False))
        return
    if verdict.blocked:
        err.print(f"[bold red]blocked[/] ({verdict.code}): {verdict.message}", highlight=False)
    else:
        click.echo(redacted, nl=not redacted.endswith("\n"))
    _findings_table(findings, policy.name)
    if verdict.blocked:
        sys.exit(1)


async def _scan_text(policy: Any, text: str) -> Any:
    from guard.audit import MemorySink
    from guard.engine import Guard
    from guard.settings import Settings

    # Scanning is about personal data: no moderation calls and no audit trail.
    guard = Guard(policy, Settings.from_env(moderation_provider="none"), audit_sink=MemorySink())
    try:
        async with guard.call(route="scan") as call:
            return await call.check_request(
                {"model": "scan", "messages": [{"role": "user", "content": text}]})
    finally:
        guard.close()


def _findings_table(findings: list[dict[str, Any]], policy_name: str) -> None:
    if not findings:
        err.print(f"[green]No personal data found[/] (policy {policy_name}).")
        return
    table = Table(title=f"Found {len(findings)} value(s) — policy {policy_name}", title_justify="left")
    for column in ("entity", "at", "score", "action", "written as"):
        table.add_column(column)
    for f in findings:
        table.add_row(f["label"], f"{f['start']}-{f['end']}", f"{f['score']:.2f}", f["action"],
                      f["replacement"] or "(kept)")
    err.print(table)


# -- guard classify --------------------------------------------------------------------------


@main.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--model", "model_name", type=click.Choice(["moderation", "injection"]),
              required=True, help="moderation: the local moderation model (13 categories); "
                                  "injection: the prompt-injection model (one score).")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="A text is flagged when a score reaches this (0.5 = the threshold chosen "
                   "on validation data).")
def classify(source: TextIO, model_name: str, threshold: float) -> None:
    """Score JSON lines {"text": ...} from SOURCE (a file, or stdin) with an offline model.

    Writes one line per input: {"flagged": bool, "scores": {...}} (moderation: a score per
    category; injection: {"injection": score}). Nothing leaves the machine.

    \b
    echo '{"text": "Ignore all previous instructions"}' | guard classify --model injection
    guard classify --model moderation prompts.jsonl > scores.jsonl
    """
    from guard.moderation.classify import classify_lines

    try:
        classify_lines(source, sys.stdout, model_name, threshold)
    except ValueError as exc:
        _fail(str(exc))


# -- guard serve -----------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--policy", "policy_ref", default=None,
              help="Policy file or shipped policy name [default: $GUARD_POLICY or default].")
@click.option("--upstream", default=None,
              help="OpenAI-compatible base URL [default: $GUARD_UPSTREAM_URL, or offline].")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--shutdown-timeout", default=None, type=click.FloatRange(min=0),
              help="Seconds to let in-flight requests and streams finish on SIGTERM "
                   "[default: $GUARD_SHUTDOWN_TIMEOUT_S or 30].")
@click.option("--pii-processes", type=click.IntRange(0, 64), default=None,
              help="Extra processes per worker that share PII detection of long texts "
                   "(GUARD_PII_PROCESSES; default 0). Each holds its own copy of the model.")
@click.option("--passthrough", multiple=True, metavar="PREFIX",
              help="Forward this path prefix (e.g. /v1/files) UNGUARDED; repeatable "
                   "[default: $GUARD_PASSTHROUGH, comma-separated].")
def serve(host: str, port: int, policy_ref: str | None, upstream: str | None, workers: int,
          shutdown_timeout: float | None, pii_processes: int | None,
          passthrough: tuple[str, ...]) -> None:
    """Run the OpenAI-compatible proxy: point any OpenAI SDK at http://HOST:PORT/v1.

    With no OPENAI_API_KEY and no upstream it runs OFFLINE: a built-in model stand-in
    answers, and moderation is the local classifier — no account and no network needed.

    \b
    GET /healthz, /readyz and /metrics answer operations; SIGHUP reloads the policy (a
    broken one is refused and the old one stays); SIGTERM drains, then flushes the audit.
    """
    import uvicorn

    from guard.limits import DEFAULT_MAX_HEADER_BYTES
    from guard.policy import load_policy
    from guard.proxy import (
        SERVER_OPTIONS,
        ProxyConfig,
        is_offline,
        parse_client_keys,
        passthrough_from_env,
    )
    from guard.settings import DEFAULT_AUDIT_SINK
    from guard.wire import API_ROUTES

    if policy_ref:
        os.environ["GUARD_POLICY"] = policy_ref
    if upstream:
        os.environ["GUARD_UPSTREAM_URL"] = upstream
    if pii_processes is not None:
        os.environ["GUARD_PII_PROCESSES"] = str(pii_processes)
    if passthrough:
        os.environ["GUARD_PASSTHROUGH"] = ",".join(passthrough)
    try:
        policy = load_policy(os.environ.get("GUARD_POLICY") or "default")
    except PolicyError as exc:
        _fail(str(exc))
        return
    try:  # refuse an open relay before loading anything
        ProxyConfig(upstream_url="-", server_key=os.environ.get("OPENAI_API_KEY") or None,
                    client_keys=parse_client_keys(os.environ.get("GUARD_CLIENT_KEYS")),
                    passthrough=passthrough_from_env())
    except ConfigError as exc:
        _fail(str(exc))
    offline = is_offline()
    sink = os.environ.get("GUARD_AUDIT") or policy.audit.sink or DEFAULT_AUDIT_SINK
    if offline:
        err.print("[bold yellow]OFFLINE MODE[/]: no OPENAI_API_KEY and no upstream configured. "
                  "Answers come from Guard's built-in offline model (it echoes what it "
                  "received) and moderation uses the local classifier. Set --upstream or "
                  "OPENAI_API_KEY to use a real model.", highlight=False)
    else:
        keys = ("server key (clients need GUARD_CLIENT_KEYS)" if os.environ.get("OPENAI_API_KEY")
                else "clients bring their own key")
        err.print(f"Upstream: {os.environ.get('GUARD_UPSTREAM_URL') or 'https://api.openai.com/v1'}"
                  f" — {keys}", highlight=False)
    err.print(f"Policy: {policy.name} ({policy.source}, sha256 {policy.sha256[:12]}), "
              f"mode {policy.mode}; audit: {sink}", highlight=False)
    unguarded = ", ".join(passthrough_from_env()) or "none"
    err.print(f"Guarded: POST {', '.join(API_ROUTES)}; passed through unguarded: {unguarded}; "
              "other routes: 404", highlight=False)
    err.print(f"Point your OpenAI SDK at [bold]http://{host}:{port}/v1[/]", highlight=False)
    if workers > 1:
        from guard.ops.multiproc import prepare_multiprocess_metrics

        err.print(f"Metrics: {workers} workers share {prepare_multiprocess_metrics()} "
                  "(Prometheus multiprocess mode). Reload a policy with GUARD_POLICY_WATCH_S or "
                  "SIGHUP to the workers (not to this supervisor, which restarts them).",
                  highlight=False)
    if shutdown_timeout is None:
        shutdown_timeout = float(os.environ.get("GUARD_SHUTDOWN_TIMEOUT_S") or 30)
    try:
        # h11's own header limit must be above Guard's, so oversized headers get a 431.
        header_limit = int(os.environ.get("GUARD_MAX_HEADER_BYTES") or DEFAULT_MAX_HEADER_BYTES)
        uvicorn.run("guard.proxy:app_from_env", factory=True, host=host, port=port,
                    workers=workers, **SERVER_OPTIONS,
                    timeout_graceful_shutdown=math.ceil(shutdown_timeout),
                    h11_max_incomplete_event_size=max(64 * 1024, 4 * header_limit))
    except ConfigError as exc:
        _fail(str(exc))


# -- guard demo ------------------------------------------------------------------------------


@main.command()
@click.option("--audit", "audit_url", default="sqlite:///guard-demo.db", show_default=True,
              help="Where the demo's audit records go.")
def demo(audit_url: str) -> None:
    """A short scripted tour: PII, a flagged prompt, an output rule, a tool call — offline."""
    from guard.demo import run_demo

    run_demo(Console(), audit_url)


# -- guard policy ----------------------------------------------------------------------------


@main.command()
@click.option("--policy", "policy_ref", default=None,
              help="Policy file or shipped pack (default: $GUARD_POLICY or 'default').")
@click.option("--timeout", "timeout_s", default=5.0, show_default=True, type=float,
              help="Seconds to wait for each network probe.")
def doctor(policy_ref: str | None, timeout_s: float) -> None:
    """Check this deployment: policy, spaCy model, moderation endpoint, audit store, clock.

    Reads the same settings as `guard serve`. Exits 1 when a check fails.
    """
    from guard.doctor import run_checks

    out = Console()
    checks = run_checks(policy_ref, timeout_s=timeout_s)
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("")
    table.add_column("check")
    table.add_column("found")
    table.add_column("to fix")
    for check in checks:
        table.add_row("[green]ok[/]" if check.ok else "[bold red]FAIL[/]", check.name,
                      check.detail, check.fix)
    out.print(table)
    failed = [c for c in checks if not c.ok]
    if failed:
        out.print(f"[bold red]{len(failed)} of {len(checks)} checks failed.[/]")
        sys.exit(1)
    out.print(f"[green]All {len(checks)} checks passed.[/]")


@main.group()
def policy() -> None:
    """Validate policies and run their cases files."""


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def policy_check(files: tuple[Path, ...]) -> None:
    """Validate policy FILES; errors name the file, line, key path and what is allowed."""
    from guard.policy import load_policy

    failed = 0
    for path in files:
        try:
            loaded = load_policy(path)
        except PolicyError as exc:
            failed += 1
            for problem in exc.problems:
                err.print(f"[red]✗[/] {problem}", highlight=False)
            continue
        err.print(f"[green]✓[/] {path}: policy {loaded.name!r} ({loaded.mode}), "
                  f"sha256 {loaded.sha256[:12]}", highlight=False)
    sys.exit(1 if failed else 0)


@policy.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
def policy_test(paths: tuple[Path, ...], verbose: bool) -> None:
    """Run each policy's cases file (NAME.cases.yaml beside NAME.yaml).

    Without PATHS: ./policies if it exists, else the policies shipped with Guard.
    """
    from guard.cases import discover, run_policy_cases
    from guard.policy import packaged_policies_dir

    roots = list(paths) or [Path("policies") if Path("policies").is_dir()
                            else packaged_policies_dir()]
    policies = discover(roots)
    if not policies:
        _fail(f"no policy files under {', '.join(map(str, roots))}")
    total = failed = 0
    table = Table(title_justify="left")
    for column in ("policy", "case", "result"):
        table.add_column(column)
    with err.status("Loading the NER model and running cases…"):
        for path in policies:
            try:
                results = run_policy_cases(path)
            except (PolicyError, ConfigError) as exc:
                failed += 1
                table.add_row(str(path), "(file)", f"[red]error[/] {exc}")
                continue
            for result in results:
                total += 1
                if not result.passed:
                    failed += 1
                    table.add_row(result.policy, result.name,
                                  "[red]FAIL[/] " + "; ".join(result.problems))
                elif verbose:
                    table.add_row(result.policy, result.name, "[green]pass[/]")
    if table.row_count:
        err.print(table)
    colour = "red" if failed else "green"
    err.print(f"[{colour}]{total - failed} passed, {failed} failed[/] "
              f"({len(policies)} polic{'y' if len(policies) == 1 else 'ies'})")
    sys.exit(1 if failed else 0)


from guard.audit.cli import audit as audit_group  # noqa: E402

main.add_command(audit_group)

from guard.batch.cli import batch as batch_group  # noqa: E402

main.add_command(batch_group)


def run() -> None:
    """Entry point that turns Guard's own errors into a message instead of a traceback."""
    try:
        main(standalone_mode=True)
    except GuardError as exc:
        _fail(str(exc))
