"""Detection across cores: worker processes that each hold a detector.

spaCy's NER holds the GIL for most of its work, so threads do not add cores. A
:class:`PiecePool` spreads the pieces of one batch (whole short texts, or the overlapping
pieces of a long one — :func:`guard.pii.segments.split_pieces`) over its worker processes
*and* the calling thread, balanced by characters, and returns their spans in order.

Workers load their own detector once, at start. The ``fork`` start method (the CLI, which
forks before starting any thread) shares the already loaded model; ``forkserver`` (the
server, whose event loop and threads must not be forked) loads it in each worker.
"""

from __future__ import annotations

import heapq
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from guard.values import Span

Analyse = Callable[[Sequence[str], frozenset[str], float], list[list[Span]]]

_worker_analyse: Analyse | None = None


def _start_worker(model: str) -> None:
    global _worker_analyse
    from guard.pii.detector import get_detector

    _worker_analyse = get_detector(model).analyze_pieces


def _analyse_in_worker(texts: Sequence[str], wanted: frozenset[str], min_score: float) -> list[list[Span]]:
    assert _worker_analyse is not None, "worker started without a detector"
    return _worker_analyse(texts, wanted, min_score)


def _ready() -> bool:
    return _worker_analyse is not None


class PiecePool:
    """``processes`` worker processes plus the calling thread, for one detector model."""

    def __init__(self, model: str, processes: int, start_method: str = "forkserver") -> None:
        if processes < 1:
            raise ValueError("a piece pool needs at least one process")
        self.processes = processes
        self._executor = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context(start_method),
            initializer=_start_worker,
            initargs=(model,),
        )

    def start(self) -> None:
        """Start the workers and wait until each has loaded its model."""
        for future in [self._executor.submit(_ready) for _ in range(self.processes)]:
            future.result()

    def run(
        self, local: Analyse, texts: Sequence[str], wanted: frozenset[str], min_score: float
    ) -> list[list[Span]]:
        """Spans of each text, the work shared between ``local`` (this thread) and the workers."""
        groups = balance([len(t) for t in texts], self.processes + 1)
        futures: list[Future[list[list[Span]]]] = [
            self._executor.submit(_analyse_in_worker, [texts[i] for i in group], wanted, min_score)
            for group in groups[1:]
        ]
        out: list[list[Span]] = [[] for _ in texts]
        for i, spans in zip(groups[0], local([texts[i] for i in groups[0]], wanted, min_score), strict=True):
            out[i] = spans
        for group, future in zip(groups[1:], futures, strict=True):
            for i, spans in zip(group, future.result(), strict=True):
                out[i] = spans
        return out

    def close(self) -> None:
        # Waiting (for idle workers, a few milliseconds) lets the executor close its pipes
        # itself; left to the interpreter's exit, its wake-up could write to a closed pipe.
        self._executor.shutdown(wait=True, cancel_futures=True)


def balance(sizes: Sequence[int], bins: int) -> list[list[int]]:
    """Indices of ``sizes`` in ``bins`` groups of similar total size (largest first into the
    lightest group); each group keeps ascending index order.

    >>> balance([5, 1, 4, 2], 2)
    [[0, 1], [2, 3]]
    """
    heap = [(0, b) for b in range(bins)]
    groups: list[list[int]] = [[] for _ in range(bins)]
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        load, b = heapq.heappop(heap)
        groups[b].append(i)
        heapq.heappush(heap, (load + sizes[i], b))
    return [sorted(g) for g in groups]
