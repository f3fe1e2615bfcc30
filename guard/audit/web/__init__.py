"""The review page: a read-only Starlette app over one audit store.

``guard audit serve`` runs it; :func:`create_review_app` builds it for embedding or tests.
Everything it needs ships in the package (``static/``): plain HTML, JS and CSS, no CDN, so
it works on a machine with no internet. The JSON API behind it:

=============================  ==========================================================
``GET /api/records``           summaries, newest first (filters as query parameters,
                               ``limit`` up to 500, ``before`` = row id for the next page)
``GET /api/records/{id}``      one whole record
``GET /api/chart?bucket=hour``  decisions per hour (or ``day``), for the chart
``GET /api/stats``             the numbers of ``guard audit stats``
=============================  ==========================================================

Read-only by construction: the store is opened read-only (SQLite ``mode=ro``, PostgreSQL
``default_transaction_read_only``) and only GET routes exist. With an admin key, every API
route wants it as ``Authorization: Bearer KEY`` or ``?key=KEY``; the page (which holds no
data) reads it from its own URL and sends it with each API call.
"""

from __future__ import annotations

from guard.audit.web.app import create_review_app

__all__ = ["create_review_app"]
