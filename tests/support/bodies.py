"""Small builders for OpenAI-shaped request and response bodies."""

from __future__ import annotations

from typing import Any


def chat(*contents: str, **extra: Any) -> dict[str, Any]:
    """A chat request whose messages alternate user / assistant, starting with user."""
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)]
    return {"model": "gpt-4o-mini", "messages": messages, **extra}


def answer(content: str, **message: Any) -> dict[str, Any]:
    """A chat completion response with one choice."""
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, **message}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
    }
