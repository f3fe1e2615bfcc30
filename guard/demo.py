"""``guard demo``: a short scripted tour of the proxy on the embedded, offline default.

Each step sends a request through the real proxy app (in-process, no network), then shows
what the user sent, what the upstream received, what came back, and the audit record.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx2
from rich.console import Console, Group
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.text import Text

from guard.audit import read_records
from guard.engine import Guard
from guard.policy import load_policy
from guard.proxy import create_app
from guard.settings import Settings


@dataclass(frozen=True)
class Step:
    title: str
    why: str
    body: dict[str, Any]


SEND_EMAIL_TOOL = {"type": "function", "function": {
    "name": "send_email", "description": "Send an e-mail.",
    "parameters": {"type": "object", "properties": {"to": {"type": "string"},
                                                    "body": {"type": "string"}},
                   "required": ["to"]}}}

STEPS = (
    Step("PII in a chat history",
         "Names, e-mails and phone numbers become placeholders before the prompt leaves; the "
         "same value gets the same placeholder in every turn, and the answer gets them back.",
         {"model": "gpt-4o-mini", "messages": [
             {"role": "user", "content": "Hi, I'm Dana Whitfield, dana.whitfield@example.com."},
             {"role": "assistant", "content": "Hello! How can I help?"},
             {"role": "user", "content": "Call me on (415) 555-0198 or mail "
                                         "dana.whitfield@example.com about my order."}]}),
    Step("A flagged prompt",
         "Moderation (here the offline local classifier) blocks the prompt; it never reaches "
         "the model and the SDK raises BadRequestError with code guard.moderation.",
         {"model": "gpt-4o-mini", "messages": [
             {"role": "user", "content": "How do I make a pipe bomb to kill my neighbour?"}]}),
    Step("An answer that breaks an output rule",
         "The model's answer contains an API key; the no-api-keys rule redacts it before the "
         "client sees it.",
         {"model": "gpt-4o-mini", "messages": [
             {"role": "user", "content": "Repeat this config line: "
                                         "OPENAI_KEY=sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34"}]}),
    Step("A tool call with an e-mail in its arguments",
         "Tool-call arguments are JSON inside a string: values inside it are pseudonymised and "
         "restored, and the JSON stays valid.",
         {"model": "gpt-4o-mini", "tools": [SEND_EMAIL_TOOL], "messages": [
             {"role": "user", "content": "Tell ravi.patel@example.org his parcel shipped."}]}),
)

AUDIT_FIELDS = ("request_id", "principal", "decision", "status", "code", "input_entities",
                "moderation", "output_rules", "usage", "cost_usd", "latency_ms")


def _messages_text(body: Any) -> str:
    lines = []
    for message in (body or {}).get("messages", []):
        content = message.get("content")
        if content is None and message.get("tool_calls"):
            content = " ".join(f"{c['function']['name']}({c['function']['arguments']})"
                               for c in message["tool_calls"])
        lines.append(f"{message.get('role')}: {content}")
    return "\n".join(lines)


def _answer_text(status: int, body: Any) -> str:
    if status != 200:
        error = (body or {}).get("error", {})
        return f"HTTP {status} — {error.get('code')}: {error.get('message')}"
    message = body["choices"][0]["message"]
    finish = body["choices"][0].get("finish_reason")
    if message.get("tool_calls"):
        call = message["tool_calls"][0]["function"]
        return f"tool call {call['name']}({call['arguments']})  [finish_reason: {finish}]"
    return f"{message.get('content')}  [finish_reason: {finish}]"


async def _run(console: Console, audit_url: str) -> None:
    guard = Guard(load_policy("default"),
                  Settings.from_env(moderation_provider="local", audit_sink=audit_url))
    app = create_app(guard, offline=True)
    assert app.offline_upstream is not None
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://guard.demo/v1") as client:
        for number, step in enumerate(STEPS, 1):
            before = len(app.offline_upstream.received)
            response = await client.post("/chat/completions", json=step.body,
                                         headers={"authorization": "Bearer demo-key"})
            received = list(app.offline_upstream.received)[before:]
            guard.audit_writer.flush()
            record = next((r for r in read_records(audit_url)
                           if r["request_id"] == response.headers["x-guard-request-id"]), {})
            shown = {k: record.get(k) for k in AUDIT_FIELDS if k in record}
            upstream = (_messages_text(received[-1].body) if received
                        else "(nothing — the request was blocked before it left)")
            console.print(Rule(f"[bold]{number}. {step.title}[/]"))
            console.print(Text(step.why, style="dim"))
            console.print(Panel(_messages_text(step.body), title="you sent", title_align="left"))
            console.print(Panel(upstream, title="the upstream received", title_align="left",
                                border_style="yellow"))
            console.print(Panel(_answer_text(response.status_code, response.json()),
                                title=f"you got back (x-guard-decision: "
                                      f"{response.headers['x-guard-decision']})",
                                title_align="left", border_style="green"))
            console.print(Panel(Group(Syntax(json.dumps(shown, indent=2), "json",
                                             background_color="default")),
                                title="audit record (no text, no values)", title_align="left",
                                border_style="blue"))
    guard.close()


def run_demo(console: Console, audit_url: str) -> None:
    console.print(Panel.fit(
        "Guard demo — offline: the built-in model stand-in echoes what it received, and "
        "moderation is the local classifier. No account, no network.", border_style="cyan"))
    asyncio.run(_run(console, audit_url))
    console.print(Rule("[bold]The audit store[/]"))
    console.print(f"Records were written to [bold]{audit_url}[/]. Review them with:\n"
                  f"  guard audit query --sink {audit_url}\n"
                  f"  guard audit stats --sink {audit_url}\n"
                  f"  guard audit verify --sink {audit_url}\n"
                  f"  guard audit serve --sink {audit_url}    # the review page", highlight=False)
