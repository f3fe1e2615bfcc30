"""What a call cost, from a price table in configuration (never fetched at run time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# USD per one million tokens: (input, output). Dated snapshots match by prefix.
DEFAULT_PRICES: Mapping[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def price_for(model: str | None, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """The longest table entry that ``model`` starts with (``gpt-4o-mini-2024-07-18``)."""
    if not model:
        return None
    matches = [name for name in prices if model == name or model.startswith(name + "-")]
    return prices[max(matches, key=len)] if matches else None


def usage_of(body: Mapping[str, Any]) -> dict[str, int] | None:
    """Prompt and completion tokens from a response's ``usage``, if it has one."""
    usage = body.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion}


def cost_usd(model: str | None, usage: Mapping[str, int] | None,
             prices: Mapping[str, tuple[float, float]]) -> float | None:
    price = price_for(model, prices)
    if price is None or usage is None:
        return None
    cost = (usage["prompt_tokens"] * price[0] + usage["completion_tokens"] * price[1]) / 1_000_000
    return round(cost, 8)
