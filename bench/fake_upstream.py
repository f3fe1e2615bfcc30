#!/usr/bin/env python3
"""Run guard.testing.FakeUpstream in its own process (so a benchmark's client does not share
its interpreter). It answers chat completions and ``/v1/moderations``.

``--reply fixed`` (default) answers TOKENS words of 4 characters, streamed DELAY seconds
apart; ``--reply echo`` answers with the last user message as the model received it
(placeholders included, so Guard restores them), like Guard's offline model.

A request may ask for another pace with the header ``x-bench-delay: SECONDS`` (Guard
forwards it), so one upstream serves both the sequential and the concurrent runs. Run a
second instance for ``/v1/moderations``: like OpenAI's, the moderation service then does not
share a process with 200 streams.

    python bench/fake_upstream.py --port 9100 --tokens 200 --delay 0.005
    python bench/fake_upstream.py --port 9100 --reply echo
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guard.testing import FakeUpstream


class BenchUpstream(FakeUpstream):
    def __init__(self, *, delay: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.default_delay = delay

    async def record(self, request: Request) -> Any:
        # Memory stays flat over a long benchmark: nothing is kept.
        body = await super().record(request)
        self.requests.clear()
        self.received.clear()
        return body

    async def chat_completions(self, request: Request) -> Response:
        # Runs never overlap, so one attribute serves them all.
        self.stream_delay_s = float(request.headers.get("x-bench-delay") or self.default_delay)
        return await super().chat_completions(request)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.005)
    ap.add_argument("--reply", choices=["fixed", "echo"], default="fixed",
                    help="echo: answer with what the model was sent (to check PII restore)")
    ap.add_argument("--echo", action="store_true", help="the same as --reply echo")
    a = ap.parse_args()
    text = " ".join(f"w{i:02d}" for i in range(a.tokens))[: a.tokens * 4]

    def reply(body: Any) -> dict[str, Any]:
        return {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": a.tokens,
                          "total_tokens": 20 + a.tokens}}

    echo = a.echo or a.reply == "echo"
    upstream = BenchUpstream(reply=None if echo else reply, port=a.port, delay=a.delay)
    upstream.stream_chunk_chars = 4
    upstream.start()
    print(upstream.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()
