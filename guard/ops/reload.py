"""Policy reload without a restart: on ``SIGHUP`` and, if asked, when the policy file changes.

A new policy is loaded and all its parts are built off the event loop; only then does the
guard switch to it (:meth:`guard.Guard.reload`). A policy that does not load or build is
refused: the error is logged (file, line, key path) and the old policy stays in force.
Calls already running finish under the policy they started with, and every audit record
names the policy that decided it (``policy.sha256``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.engine import Guard
from guard.policy import resolve_policy_path

log = logging.getLogger("guard.reload")


@dataclass(frozen=True)
class ReloadResult:
    applied: bool
    name: str
    sha256: str
    error: str | None = None
    """Why the new policy was refused (``applied`` is false)."""


class PolicyReloader:
    """Reloads ``guard``'s policy from ``source`` (a file path or a shipped pack name).

    ``watch_interval_s``: also poll the file that often and reload when its content
    changed and then stayed the same for one interval (``None``: only on ``SIGHUP`` or
    :meth:`reload`). ``on_result`` hears about
    every attempt (metrics and readiness do).
    """

    def __init__(self, guard: Guard, source: str | Path, *, watch_interval_s: float | None = None,
                 on_result: Callable[[ReloadResult], None] | None = None) -> None:
        if watch_interval_s is not None and watch_interval_s <= 0:
            raise ValueError("watch_interval_s must be > 0 seconds")
        self.guard = guard
        self.source = source
        self.watch_interval_s = watch_interval_s
        self.on_result = on_result
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[object]] = set()
        self._signal_loop: asyncio.AbstractEventLoop | None = None

    async def reload(self) -> ReloadResult:
        """Load the policy again; refuse it (keeping the old one) if it is broken."""
        async with self._lock:
            old = self.guard.policy
            try:
                new = await asyncio.to_thread(self.guard.reload, self.source)
            except Exception as exc:  # any failure to build must leave the old policy
                error = str(exc) or type(exc).__name__
                log.error("policy reload refused; policy %s (sha256 %s) stays in force: %s",
                          old.name, old.sha256[:12], error)
                result = ReloadResult(False, old.name, old.sha256, error)
            else:
                if new.sha256 == old.sha256:
                    log.info("policy reload: %s unchanged (sha256 %s)", new.name, new.sha256[:12])
                else:
                    log.warning("policy reloaded: %s (sha256 %s) replaces %s (sha256 %s)",
                                new.name, new.sha256[:12], old.name, old.sha256[:12])
                result = ReloadResult(True, new.name, new.sha256)
        if self.on_result is not None:
            self.on_result(result)
        return result

    # -- triggers ------------------------------------------------------------------------

    def start(self) -> None:
        """Listen for ``SIGHUP`` (main thread, POSIX) and start watching, if configured."""
        loop = asyncio.get_running_loop()
        if hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, self._spawn)
                self._signal_loop = loop
        if self.watch_interval_s is not None:
            self._spawn(self._watch())

    async def stop(self) -> None:
        if self._signal_loop is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._signal_loop.remove_signal_handler(signal.SIGHUP)
            self._signal_loop = None
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, coroutine: Coroutine[Any, Any, object] | None = None) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(
            coroutine if coroutine is not None else self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self) -> None:
        assert self.watch_interval_s is not None
        seen = self.guard.policy.sha256
        candidate: str | None = None
        while True:
            await asyncio.sleep(self.watch_interval_s)
            digest = await asyncio.to_thread(_digest, self.source)
            if digest is None or digest == seen:
                candidate = None
                continue
            if digest != candidate:
                # Changed: wait one more interval, so a file caught half-written (an editor
                # or a copy that truncates first) is not loaded, and refused, on the way.
                candidate = digest
                continue
            seen, candidate = digest, None  # a broken file is refused once, not every interval
            await self.reload()


def _digest(source: str | Path) -> str | None:
    """The SHA-256 of the policy file now, or None if it cannot be read right now."""
    try:
        return hashlib.sha256(resolve_policy_path(source).read_bytes()).hexdigest()
    except Exception:
        return None
