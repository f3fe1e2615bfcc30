"""The Batch API, guarded: redact batch input files, restore and check their results.

- :func:`redact_batch` runs the input pipeline over every request line (one audit record
  per line, tied to the batch by ``batch.ref``), giving the lines to upload, a per-line
  report and the pseudonym maps;
- :class:`BatchMaps` keeps those maps, only ever written encrypted (``guard.batch.crypto``);
- :func:`restore_results` checks each result line with the output rules and restores it;
- :func:`check_request_line` / :func:`check_result_line` are the one place that knows which
  line urls the engine can check.

The same functions serve ``guard batch`` and the proxy's ``/v1/files`` route.
"""

from guard.batch.check import CHECKED_URLS, LineVerdict, check_request_line, check_result_line
from guard.batch.crypto import BatchKeyError, MapsFileError, batch_key
from guard.batch.lines import BatchFileError, RequestLine, ResultLine, parse_requests, parse_results
from guard.batch.maps import BatchMaps, LineMaps
from guard.batch.redact import RedactedBatch, redact_batch
from guard.batch.restore import RestoredBatch, restore_results

__all__ = [
    "CHECKED_URLS",
    "BatchFileError",
    "BatchKeyError",
    "BatchMaps",
    "LineMaps",
    "LineVerdict",
    "MapsFileError",
    "RedactedBatch",
    "RequestLine",
    "RestoredBatch",
    "ResultLine",
    "batch_key",
    "check_request_line",
    "check_result_line",
    "parse_requests",
    "parse_results",
    "redact_batch",
    "restore_results",
]
