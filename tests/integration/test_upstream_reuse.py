"""A pooled connection the upstream closes just as Guard reuses it costs the client nothing."""

from __future__ import annotations

import asyncio

import httpx2

from guard.upstream import Forwarder

ANSWER = b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}'


async def _serve_then_drop(connections: list[int]) -> asyncio.Server:
    """One answer per connection: the second request on a kept-alive connection finds it
    closed, without a response (what a server's keep-alive timeout does at the wrong moment)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            for answered in (False, True):
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if answered:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass  # the client closed its side
        finally:
            writer.close()
            await writer.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_request_on_a_connection_the_upstream_just_closed_is_sent_again() -> None:
    async def run() -> tuple[list[int], list[int]]:
        connections: list[int] = []
        server = await _serve_then_drop(connections)
        port = server.sockets[0].getsockname()[1]
        forwarder = Forwarder(f"http://127.0.0.1:{port}/v1")
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=forwarder),
                                    base_url="http://guard", timeout=10)
        try:
            statuses = [
                (await client.post("/v1/chat/completions", json={"model": "m", "messages": []}))
                .status_code
                for _ in range(2)
            ]
        finally:
            await client.aclose()
            await forwarder.aclose()
            server.close()
            await server.wait_closed()
        return statuses, connections

    statuses, connections = asyncio.run(run())
    assert statuses == [200, 200]
    assert connections == [1, 2]  # the second request went again, on a new connection
