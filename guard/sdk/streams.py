"""Streamed answers through the engine: upstream SSE bytes in, checked SSE bytes out.

Each chunk the upstream sends goes through :class:`~guard.stream.StreamGuard` before the
SDK's own stream parser sees it; a block mid-stream closes the upstream at once. The SDK
stops reading at ``data: [DONE]`` and closes the response, so the end of the call (and its
one audit record) is settled in ``close``: after a released ``[DONE]`` the call is complete,
before it the consumer went away (``client_disconnected``, as the proxy records it).

Sync streams run the engine on the background loop (:mod:`guard.sdk.loop`)::

    response = exchange.relay(upstream, SyncGuardedStream(exchange, upstream))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx2

from guard.sdk.exchange import Exchange
from guard.sdk.loop import in_loop_thread, run_sync
from guard.wire.sse import DONE


class _Progress:
    """What the consumer has been given so far (was ``[DONE]`` among it?)."""

    def __init__(self) -> None:
        self.done_released = False
        self.finished = False
        self._tail = b""

    def released(self, data: bytes) -> bytes:
        window = self._tail + data
        self.done_released = self.done_released or DONE in window
        self._tail = window[-len(DONE):]
        return data


class SyncGuardedStream(httpx2.SyncByteStream):
    """The checked body of one streamed answer, for the sync client."""

    def __init__(self, exchange: Exchange, upstream: httpx2.Response) -> None:
        self._exchange = exchange
        self._upstream = upstream
        self._guard = exchange.stream_guard()
        self._progress = _Progress()
        self._chunks: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        # One iterator however often this is iterated: a reader that stops and resumes
        # (to drain the connection) continues where it left off.
        if self._chunks is None:
            self._chunks = self._run()
        return self._chunks

    def _run(self) -> Iterator[bytes]:
        guard, progress = self._guard, self._progress
        try:
            for chunk in self._upstream.iter_bytes():
                out = run_sync(guard.feed(chunk))
                if guard.stopped:
                    self._upstream.close()  # a block: read no more of the answer
                if out:
                    yield progress.released(out)
                if guard.stopped:
                    break
            out = run_sync(guard.finish())
            progress.finished = True
            if out:
                yield progress.released(out)
        except GeneratorExit:
            raise  # the consumer stopped reading; close() settles the call
        except BaseException as exc:
            if not progress.done_released:
                self._exchange.call.truncated = True
                self._exchange.end(exc)
            raise
        self.close()

    def close(self) -> None:
        if not self._exchange.ended:
            try:
                if not self._progress.finished and not self._guard.stopped:
                    if self._progress.done_released and not in_loop_thread():
                        run_sync(self._guard.finish())  # records the output decision
                    else:
                        call = self._exchange.call
                        call.status, call.truncated = "client_disconnected", True
                        if not in_loop_thread():
                            run_sync(self._guard.aclose())  # cancel checks still running
            except BaseException as exc:
                self._exchange.end(exc)
                raise
            finally:
                self._exchange.end()
        self._upstream.close()


class AsyncGuardedStream(httpx2.AsyncByteStream):
    """The checked body of one streamed answer, for the async client."""

    def __init__(self, exchange: Exchange, upstream: httpx2.Response) -> None:
        self._exchange = exchange
        self._upstream = upstream
        self._guard = exchange.stream_guard()
        self._progress = _Progress()
        self._chunks: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        # The async SDK reads on after [DONE] to drain the connection: it must continue
        # this iteration, not start the upstream body again.
        if self._chunks is None:
            self._chunks = self._run()
        return self._chunks

    async def _run(self) -> AsyncIterator[bytes]:
        guard, progress = self._guard, self._progress
        try:
            async for chunk in self._upstream.aiter_bytes():
                out = await guard.feed(chunk)
                if guard.stopped:
                    await self._upstream.aclose()
                if out:
                    yield progress.released(out)
                if guard.stopped:
                    break
            out = await guard.finish()
            progress.finished = True
            if out:
                yield progress.released(out)
        except GeneratorExit:
            raise
        except BaseException as exc:
            # After [DONE] the answer is complete (a drain timed out, say): aclose() settles.
            if not progress.done_released:
                self._exchange.call.truncated = True
                self._exchange.end(exc)
            raise
        await self.aclose()

    async def aclose(self) -> None:
        if not self._exchange.ended:
            try:
                if not self._progress.finished and not self._guard.stopped:
                    if self._progress.done_released:
                        await self._guard.finish()  # records the output decision
                    else:
                        call = self._exchange.call
                        call.status, call.truncated = "client_disconnected", True
                        await self._guard.aclose()  # cancel checks still running
            except BaseException as exc:
                self._exchange.end(exc)
                raise
            finally:
                self._exchange.end()
        await self._upstream.aclose()
