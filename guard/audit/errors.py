"""The audit store's one exception: a failure whose message is safe to log.

Messages are built from the store's address (never its password), SQLSTATE codes and
connection errors, never from a record, so the writer may log them as they are.
"""

from __future__ import annotations

from guard.errors import GuardError


class StoreError(GuardError):
    """An audit store could not be reached or refused a batch (PII-free message)."""
