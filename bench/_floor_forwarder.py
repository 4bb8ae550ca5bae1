"""The least a Python gateway can spend: a byte-for-byte forwarder, for ``bench/gateway.py``.

It does what no gateway can skip and nothing else: accept the client's
connection, read its request, POST the body upstream over a kept connection,
and copy each chunk of the answer to the client as it comes, one write per
chunk, on uvloop. No HTTP framework, no JSON, no key check, no routing.
Whatever a real gateway costs per request above this figure is its own
work; below it nothing in Python goes. Loopback only; it exits after
``--lifetime`` seconds.

Run: python bench/_floor_forwarder.py PORT UPSTREAM_PORT
"""

from __future__ import annotations

import argparse
import asyncio
import resource

import uvloop

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
)
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class Forwarder:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.idle: list[Connection] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head))
            await self.forward(body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def forward(self, body: bytes, writer: asyncio.StreamWriter) -> None:
        if self.idle:
            upstream, upstream_writer = self.idle.pop()
        else:
            upstream, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.upstream_port
            )
        upstream_writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await upstream.readuntil(b"\r\n\r\n")  # the fake upstream always answers 200, chunked
        writer.write(HEAD)
        while True:
            size_line = await upstream.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await upstream.readuntil(b"\r\n")
                break
            writer.write(size_line + await upstream.readexactly(size + 2))
        writer.write(b"0\r\n\r\n")
        self.idle.append((upstream, upstream_writer))


async def serve(port: int, upstream_port: int, lifetime: float) -> None:
    forwarder = Forwarder(upstream_port)
    server = await asyncio.start_server(forwarder.handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await asyncio.sleep(lifetime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("upstream_port", type=int)
    parser.add_argument("--lifetime", type=float, default=1800.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve(args.port, args.upstream_port, args.lifetime))


if __name__ == "__main__":
    main()
