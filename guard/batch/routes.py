"""The proxy's Batch API routes: ``/v1/files`` and ``/v1/batches``, guarded.

- ``POST /v1/files`` with ``purpose=batch``: every request line goes through the input
  pipeline before the file goes upstream; the maps are stored encrypted under the file id
  the upstream returns. Withheld lines are left out (and come back as error lines with the
  results); a file with invalid lines is refused whole with every problem listed.
- ``POST /v1/batches`` only accepts an input file Guard redacted; answers of
  ``/v1/batches`` (create, retrieve, list, cancel) pass through, and Guard records from them
  which output and error files belong to which input file.
- ``GET /v1/files/{id}/content`` of such an output file is checked line by line with the
  output rules and restored; of a file Guard redacted it passes through (it holds
  placeholders only); of any other file it is refused unless ``/v1/files`` is pass-through.
- File metadata, listing and deletion pass through.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx2

from guard.asgi import Receive, Scope, Send, bearer_token, error_body, send_json
from guard.batch.crypto import MapsFileError
from guard.batch.files import split_lines
from guard.batch.lines import BatchFileError, parse_requests, parse_results
from guard.batch.multipart import FormError, Part, encode_form, parse_form
from guard.batch.redact import redact_batch
from guard.batch.report import summarise
from guard.batch.restore import restore_results
from guard.batch.store import MapsStore

if TYPE_CHECKING:
    from guard.engine import Guard
    from guard.upstream import Forwarder

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
"""OpenAI's own limit for a batch input file."""

_CONTENT = re.compile(r"/v1/files/([^/]+)/content")
_KEEP_HEADERS = (b"content-type", b"x-request-id", b"openai-")
_MAX_JSON_BYTES = 1024 * 1024


class _Refusal(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        self.status, self.message, self.code, self.param = status, message, code, param
        super().__init__(message)


class BatchRoutes:
    """ASGI app for the batch routes of the proxy (see the module docstring)."""

    def __init__(self, guard: Guard, forwarder: Forwarder, *, store: MapsStore | None,
                 passthrough: Sequence[str] = (),
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> None:
        self.guard = guard
        self.forwarder = forwarder
        self.store = store
        self.passthrough = tuple(passthrough)
        self.max_upload_bytes = max_upload_bytes

    @staticmethod
    def handles(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in ("/v1/files", "/v1/batches"))

    def _passes(self, path: str) -> bool:
        return any(path.startswith(p) for p in self.passthrough)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope.get("method", "GET")
        content = _CONTENT.fullmatch(path)
        try:
            if path == "/v1/files" and method == "POST":
                await self._upload(scope, receive, send)
            elif content is not None and method == "GET":
                await self._content(content.group(1), scope, receive, send)
            elif path.startswith("/v1/batches"):
                await self._batches(scope, receive, send)
            elif method in ("GET", "DELETE"):
                await self.forwarder(scope, receive, send)  # metadata, listing, deletion
            else:
                raise _Refusal(404, f"Guard does not handle {method} {path}.", "guard.unknown_route")
        except _Refusal as refusal:
            await send_json(send, refusal.status, error_body(
                refusal.message, code=refusal.code, param=refusal.param))

    # -- upload ----------------------------------------------------------------------------

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read(receive, self.max_upload_bytes, scope)
        try:
            parts = parse_form(body, _header(scope, b"content-type") or "")
        except FormError as exc:
            raise _Refusal(400, str(exc), "invalid_request_error") from None
        purpose = next((p.data.decode("utf-8", "replace") for p in parts if p.name == "purpose"),
                       None)
        if purpose != "batch":
            if self._passes("/v1/files"):
                await self.forwarder(scope, _replay(body), send)
                return
            raise _Refusal(400, "Guard only accepts uploads with purpose=batch (their lines are "
                           "checked). Add /v1/files to GUARD_PASSTHROUGH to forward other "
                           "uploads unchecked.", "guard.unsupported_purpose", "purpose")
        store = self._require_store()
        index = next((i for i, p in enumerate(parts) if p.name == "file"), None)
        if index is None:
            raise _Refusal(400, "The upload has no 'file' part.", "invalid_request_error", "file")
        try:
            requests = parse_requests(split_lines(parts[index].data, source="file"), source="file")
        except BatchFileError as exc:
            raise _Refusal(400, str(exc), "guard.batch_invalid_file", "file") from None

        outcome = await redact_batch(self.guard, requests, api_key=bearer_token(scope))
        if not outcome.lines:
            outcome.finish()
            codes = ", ".join(f"{c} x{n}" for c, n in summarise(outcome.reports).codes.items())
            raise _Refusal(400, f"Every line of the batch was withheld ({codes}); nothing was "
                           "uploaded.", "guard.batch_blocked", "file")
        parts[index] = Part("file", outcome.jsonl(), parts[index].filename,
                            parts[index].content_type)
        form, content_type = encode_form(parts)
        status = "upstream_error"
        try:
            answer = await self._upstream(scope, send, form, content_type)
            if answer is None:
                return
            code, headers, data = answer
            file_id = _json(data).get("id") if code == 200 else None
            if isinstance(file_id, str) and store.valid_id(file_id):
                status = "error"  # uploaded, but the maps could not be kept
                await store.save(file_id, outcome.maps)
                status = "ok"
                outcome.finish(input_file=file_id)
            summary = summarise(outcome.reports)
            headers += [(b"x-guard-batch-ref", outcome.ref.encode()),
                        (b"x-guard-batch-lines", str(summary.lines).encode()),
                        (b"x-guard-batch-withheld", str(summary.blocked).encode())]
            await _respond(send, code, headers, data)
        finally:
            if status != "ok":
                outcome.finish(status)

    # -- results ---------------------------------------------------------------------------

    async def _content(self, file_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        store = self.store
        link = await asyncio.to_thread(store.linked, file_id) if store is not None else None
        if store is None or link is None:
            redacted = store is not None and await asyncio.to_thread(store.has_maps, file_id)
            if redacted or self._passes(scope["path"]):
                await self.forwarder(scope, receive, send)  # a file Guard redacted: placeholders
                return
            raise _Refusal(404, f"Guard has no record of file {file_id}, so it cannot check its "
                           "content. For a batch's results, retrieve the batch through Guard "
                           "first (GET /v1/batches/{batch_id}); to pass other files through "
                           "unchecked, add /v1/files to GUARD_PASSTHROUGH.",
                           "guard.batch_unlinked")
        answer = await self._upstream(scope, send, b"", None)
        if answer is None:
            return
        code, headers, data = answer
        if code != 200:
            await _respond(send, code, headers, data)
            return
        try:
            maps = await store.load(link.input_file)
            results = parse_results(split_lines(data, source=file_id), source=file_id)
            restored = await restore_results(
                self.guard, results, maps, api_key=bearer_token(scope),
                batch={"input_file": link.input_file, "output_file": file_id,
                       "batch_id": link.batch_id},
                include_withheld=link.kind == "output", source=file_id)
        except MapsFileError:
            raise _Refusal(500, f"The stored maps of file {link.input_file} could not be opened "
                           "(was GUARD_BATCH_KEY changed?); the results were withheld.",
                           "guard.batch_maps_unreadable") from None
        except BatchFileError:
            raise _Refusal(502, "The upstream's result file could not be checked, so it was "
                           "withheld.", "guard.unreadable_response") from None
        summary = summarise(restored.reports)
        headers += [(b"x-guard-batch-ref", maps.ref.encode()),
                    (b"x-guard-batch-lines", str(summary.lines).encode()),
                    (b"x-guard-batch-blocked", str(summary.blocked).encode())]
        await _respond(send, 200, headers, restored.jsonl())

    # -- batches ---------------------------------------------------------------------------

    async def _batches(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read(receive, _MAX_JSON_BYTES, scope)
        passes = self._passes("/v1/batches")
        if scope.get("method") == "POST" and scope["path"] == "/v1/batches" and not passes:
            file_id = _json(body).get("input_file_id")
            if self.store is None:
                self._require_store()
            if not isinstance(file_id, str) or self.store is None or not await asyncio.to_thread(
                    self.store.has_maps, file_id):
                raise _Refusal(400, "The batch's input file was not uploaded through Guard, so "
                               "its lines were never checked. Upload it through Guard "
                               "(POST /v1/files, purpose=batch) and use the id it returns.",
                               "guard.batch_unguarded_file", "input_file_id")
        answer = await self._upstream(scope, send, body, _header(scope, b"content-type"))
        if answer is None:
            return
        code, headers, data = answer
        if code == 200 and self.store is not None:
            value = _json(data)
            batches = value.get("data") if value.get("object") == "list" else [value]
            await asyncio.to_thread(self._record_links, batches or [])
        await _respond(send, code, headers, data)

    def _record_links(self, batches: list[Any]) -> None:
        assert self.store is not None
        for item in batches:
            if not isinstance(item, dict) or not isinstance(item.get("input_file_id"), str):
                continue
            for kind in ("output", "error"):
                result_file = item.get(f"{kind}_file_id")
                if isinstance(result_file, str):
                    self.store.link(result_file, item["input_file_id"], item.get("id"), kind)

    # -- helpers ---------------------------------------------------------------------------

    def _require_store(self) -> MapsStore:
        if self.store is None:
            raise _Refusal(503, "Batch files are not guarded on this proxy: set GUARD_BATCH_KEY "
                           "(the key the pseudonym maps are encrypted with) and restart it.",
                           "guard.batch_key_missing")
        return self.store

    async def _upstream(self, scope: Scope, send: Send, body: bytes, content_type: str | None,
                        ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """Send the request upstream and read the whole answer; ``None`` once 502/504 is sent."""
        headers = [(k, v) for k, v in self.forwarder.headers_for(scope) if k != b"content-type"]
        if content_type:
            headers.append((b"content-type", content_type.encode("latin-1")))
        client = self.forwarder.client()
        try:
            response = await client.request(scope["method"], self.forwarder.url_for(scope),
                                            headers=headers, content=body)
        except httpx2.TimeoutException:
            await send_json(send, 504, error_body("The upstream did not answer in time.",
                                                  code="guard.upstream_timeout", kind="server_error"))
            return None
        except httpx2.TransportError:
            await send_json(send, 502, error_body("The upstream could not be reached.",
                                                  code="guard.upstream_unreachable",
                                                  kind="server_error"))
            return None
        kept = [(k.lower(), v) for k, v in response.headers.raw
                if k.lower().startswith(_KEEP_HEADERS)]
        return response.status_code, kept, response.content


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read(receive: Receive, limit: int, scope: Scope) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Refusal(413, f"The request body is larger than the limit of {limit} bytes.",
                       "request_too_large")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refusal(413, f"The request body is larger than the limit of {limit} bytes.",
                           "request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # nothing more will come; the forwarder never asks
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return receive


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
