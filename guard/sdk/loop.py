"""One background event loop per process, so sync code can run the async engine.

The sync OpenAI client calls its transport from whatever thread the application uses, but
the engine (NER off-loop, moderation over async HTTP) is async. Starting an event loop per
request would open a new moderation connection pool per request; instead every sync call in
the process runs its engine steps on one long-lived loop in a daemon thread, which keeps the
pools warm and lets many threads share them::

    from guard.sdk.loop import run_sync

    verdict = run_sync(call.check_request(body))   # from any thread but the loop's own

The loop starts on first use and stops at interpreter exit (or on :func:`shutdown`), after
closing async generators (the moderation provider closes its HTTP client that way), so no
socket is left for the garbage collector to complain about.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """An asyncio loop running in a daemon thread; started lazily, restartable after close.

    >>> loop = BackgroundLoop()
    >>> async def answer() -> int:
    ...     return 42
    >>> loop.run(answer())
    42
    >>> loop.close()
    """

    def __init__(self, name: str = "guard-sdk-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is re-raised).

        If the waiting thread is interrupted (``KeyboardInterrupt``), the coroutine is
        cancelled, so no engine step outlives the call that needed it.
        """
        try:
            loop = self._running_loop()
        except BaseException:
            coro.close()  # never leave a "coroutine was never awaited" behind
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop, close its async generators and the loop itself. Idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if threading.current_thread() is thread:
            raise RuntimeError("the guard SDK loop cannot be closed from its own thread")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self.in_loop_thread():
            # Waiting here for the loop we are running on would never return.
            raise RuntimeError("a sync OpenAI client was used on the guard SDK loop itself; "
                               "use AsyncOpenAI inside coroutines")
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # After a fork the parent's loop thread does not exist here: start afresh.
                ready = threading.Event()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=self._serve, args=(loop, ready), name=self.name,
                                          daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()


_LOOP = BackgroundLoop()
atexit.register(_LOOP.close)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the process's background loop and return its result."""
    return _LOOP.run(coro)


def in_loop_thread() -> bool:
    """True when called from the background loop's own thread."""
    return _LOOP.in_loop_thread()


def shutdown() -> None:
    """Stop the background loop now (it restarts on next use); also done at exit."""
    _LOOP.close()
