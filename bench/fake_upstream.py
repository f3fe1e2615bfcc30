#!/usr/bin/env python3
"""Run guard.testing.FakeUpstream in its own process (so a benchmark's client does not share
its interpreter). It answers chat completions and ``/v1/moderations``.

``--reply fixed`` (default) answers TOKENS words of 4 characters, streamed DELAY seconds
apart; ``--reply echo`` answers with the last user message as the model received it
(placeholders included, so Guard restores them), like Guard's offline model.

    python bench/fake_upstream.py --port 9100 --tokens 200 --delay 0.005
    python bench/fake_upstream.py --port 9100 --reply echo
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guard.testing import FakeUpstream


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--delay", type=float, default=0.005)
    ap.add_argument("--reply", choices=["fixed", "echo"], default="fixed")
    a = ap.parse_args()
    text = " ".join(f"w{i:02d}" for i in range(a.tokens))[: a.tokens * 4]

    def reply(body: Any) -> dict[str, Any]:
        return {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
                "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 20, "completion_tokens": a.tokens,
                          "total_tokens": 20 + a.tokens}}

    upstream = FakeUpstream(reply=reply if a.reply == "fixed" else None, port=a.port)
    upstream.stream_chunk_chars = 4
    upstream.stream_delay_s = a.delay
    upstream.start()
    print(upstream.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()
