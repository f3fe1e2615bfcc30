"""Prometheus multiprocess mode for ``guard serve --workers N``.

Each worker is a process with its own counters; a scrape reaches one of them. In
multiprocess mode every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` (in any worker) adds them all up. The directory must be empty when the
workers start, and must be set before they import ``prometheus_client``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def prepare_multiprocess_metrics() -> Path:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory; returns it.

    A directory already named by the variable is emptied of its ``*.db`` files (values of
    an earlier run would otherwise be added to this one); else a new one is made.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="guard-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory
