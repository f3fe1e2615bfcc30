"""Conversation scaling: the guard's added time on turn 50 against turn 1.

A chat client resends the whole history every turn. This bench plays a 50-turn chat (each
user turn ~300 characters holding a name, an e-mail and a phone number; each assistant turn
a short answer that names the person) the way clients send it, and times the input check of
each turn:

- **stock**: stock Presidio (default recognizers, same spaCy model) analysing every message
  of the history, as a naive guard would;
- **guard**: ``Call.check_request`` of Guard's engine with the default policy (PII only:
  moderation off, audit to memory), whose span cache answers the messages it has seen.

It prints turn 1, turn 25 and turn 50 for both, and each one's turn-50 / turn-1 ratio
(target for Guard: at most 2x), and checks that the placeholders of earlier turns are the
same on every turn. Timings are printed, never asserted.

    python bench/conversation.py [--turns 50]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import time
from typing import Any

from stock import ENTITIES, stock_presidio

FIRST = ["Amara", "Jonas", "Priya", "Mateo", "Ingrid", "Kwame", "Hana", "Luca", "Sofia", "Tariq"]
LAST = ["Okafor", "Lindqvist", "Raman", "Alvarez", "Berg", "Mensah", "Sato", "Ricci", "Novak", "Haddad"]
TOPICS = [
    "the refund for my last order has not arrived and I would like to know what is going on",
    "I need to move my appointment to next week because I will be travelling for work",
    "could you check whether the replacement part was shipped to the new address I gave you",
    "my account shows two charges for the same subscription and one of them should be reversed",
    "please update the contact details on file so that the invoices reach the right person",
]


def user_turn(rng: random.Random, turn: int) -> str:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    email = f"{name.split()[0].lower()}.{turn}@example.com"
    phone = f"+1 212 555 {rng.randrange(1000, 9999)}"
    return (f"Hello, this is {name} again. {rng.choice(TOPICS).capitalize()}. You can write to "
            f"me at {email} or call {phone} during the day. Thanks a lot for your help with "
            f"this, it matters to me. (message {turn})")


def conversation(turns: int, seed: int = 7) -> list[dict[str, str]]:
    rng = random.Random(seed)
    messages = []
    for turn in range(1, turns + 1):
        text = user_turn(rng, turn)
        messages.append({"role": "user", "content": text})
        name = text.split("this is ")[1].split(" again")[0]
        messages.append({"role": "assistant", "content": f"Thank you, {name}. I have looked into it."})
    return messages


def stock_turn_times(history: list[dict[str, str]], turns: int, repeats: int) -> list[float]:
    engine = stock_presidio()
    times = []
    for turn in range(1, turns + 1):
        sent = history[: 2 * turn - 1]
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            for message in sent:
                engine.analyze(text=message["content"], language="en", entities=ENTITIES)
            samples.append(time.perf_counter() - started)
        times.append(statistics.median(samples))
    return times


async def guard_turn_times(history: list[dict[str, str]], turns: int,
                           repeats: int) -> tuple[list[float], bool]:
    from guard.audit import MemorySink
    from guard.engine import Guard
    from guard.policy import load_policy
    from guard.settings import Settings

    guard = Guard(load_policy("default"), Settings.from_env(moderation_provider="none"),
                  audit_sink=MemorySink())
    times: list[float] = []
    previous: list[Any] = []
    stable = True
    try:
        for turn in range(1, turns + 1):
            body = {"model": "gpt-4o-mini", "messages": history[: 2 * turn - 1]}
            samples = []
            for _ in range(repeats):
                # Each repeat is a new request; only this turn's new message is uncached on
                # the first repeat, as in a real conversation.
                async with guard.call(route="bench") as call:
                    started = time.perf_counter()
                    verdict = await call.check_request(body)
                    samples.append(time.perf_counter() - started)
            times.append(samples[0])
            redacted = [m["content"] for m in verdict.body["messages"]]
            stable &= redacted[: len(previous)] == previous
            previous = redacted
    finally:
        guard.close()
    return times, stable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--stock-repeats", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    history = conversation(args.turns)
    guard_times, stable = asyncio.run(guard_turn_times(history, args.turns, 1))
    stock_times = stock_turn_times(history, args.turns, args.stock_repeats)
    marks = sorted({1, max(args.turns // 2, 1), args.turns})
    print(f"{args.turns}-turn chat, ~{len(history[0]['content'])} characters per user turn, "
          "full history sent each turn; time of the input check per turn (ms)\n")
    print(f"{'':8s}" + "".join(f"{'turn ' + str(t):>12s}" for t in marks) + f"{'last/first':>12s}")
    for name, times in (("stock", stock_times), ("guard", guard_times)):
        cells = "".join(f"{times[t - 1] * 1000:12.1f}" for t in marks)
        print(f"{name:8s}{cells}{times[-1] / times[0]:11.1f}x")
    print(f"\nguard on turn {args.turns} vs stock on turn {args.turns}: "
          f"{stock_times[-1] / guard_times[-1]:.0f}x faster")
    print(f"placeholders of earlier turns identical on every turn: {'yes' if stable else 'NO'}")


if __name__ == "__main__":
    main()
