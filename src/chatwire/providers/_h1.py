"""A lean HTTP/1.1 client for the async drivers: asyncio transports and httptools.

Why not httpx here? A gateway forwards every token it streams. Through httpx
each chunk climbed about ten coroutine and generator layers (httpx, httpcore,
h11 and anyio, each with its own timeout scope) and each request built and
merged headers, URLs and pool state; that was most of the gateway's added
time to first token. Here a chunk is one ``data_received`` callback, one call
into httptools (C) and one woken future, and a request is one write of bytes
built once.

What it does: POST with a body, a response streamed as it arrives (chunked or
sized, gzip and deflate decoded), keep-alive connections reused per event
loop and origin, TLS with the same CA bundle as the sync driver, a connect
timeout and a read timeout that restarts on every byte, and back-pressure
(reading pauses while the caller lags). What it leaves to httpx: proxies
(the driver uses httpx when one is configured for the URL) and HTTP/2.
"""

from __future__ import annotations

__all__ = [
    "KEEPALIVE_SECONDS",
    "ConnectFailed",
    "ConnectTimedOut",
    "ConnectionLost",
    "ReadTimedOut",
    "Response",
    "TransportError",
    "post",
    "proxies",
    "ssl_context",
    "uses_proxy",
]

import asyncio
import os
import ssl
import time
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import cast
from urllib.parse import urlsplit
from urllib.request import (  # type: ignore[attr-defined]  # not in typeshed
    getproxies_environment,
    proxy_bypass_environment,
)

import httptools

# Below the 5 s idle timeout common in servers (uvicorn, nginx), so a kept
# connection is rarely reused just as the server closes it.
KEEPALIVE_SECONDS = 4.0
MAX_IDLE_PER_ORIGIN = 256
# Reading pauses when this much body is waiting for the caller.
_HIGH_WATER = 256 * 1024


class TransportError(Exception):
    """A failure below HTTP semantics; the driver maps it onto the chatwire tree."""


class ConnectFailed(TransportError):
    """No connection: refused, unreachable, unknown host, or a failed TLS handshake."""


class ConnectTimedOut(TransportError):
    """No connection within the connect timeout."""


class ReadTimedOut(TransportError):
    """No byte arrived within the read timeout."""


class ConnectionLost(TransportError):
    """The connection closed, or spoke broken HTTP, before the response ended."""


@cache
def ssl_context() -> ssl.SSLContext:
    """The CA bundle both drivers trust; building it costs tens of ms, so once."""
    import certifi

    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())


@cache
def proxies() -> dict[str, str]:
    """The proxies the environment names, read once per process."""
    return getproxies_environment()


@lru_cache(maxsize=256)
def uses_proxy(url: str) -> bool:
    """Whether the environment routes ``url`` through a proxy (left to httpx)."""
    named = proxies()
    if not named:
        return False
    parts = urlsplit(url)
    if parts.scheme not in named and "all" not in named:
        return False
    return not proxy_bypass_environment(parts.hostname or "", named)


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str  # for connecting (no brackets around IPv6)
    port: int
    host_header: str
    path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


@lru_cache(maxsize=256)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConnectFailed(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    return _Target(parts.scheme, parts.hostname, port, host_header, path)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; it carries one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._lost_reason = "connection closed by the server"
        self._waiter: asyncio.Future[None] | None = None
        self._start_response()

    def _start_response(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.received_any = False
        self._broken = ""
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken = f"malformed HTTP response: {exc}"
            self.close()
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.complete and self._ends_at_close():
            self.complete = True
        if exc is not None:
            self._lost_reason = str(exc) or type(exc).__name__
        self._wake()

    def _ends_at_close(self) -> bool:
        # A body with neither a length nor chunked framing runs until the close.
        framing = self.headers.get("transfer-encoding", "").lower()
        return "content-length" not in self.headers and "chunked" not in framing

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True

    # used by Response

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until more arrives (or the connection ends); ``ReadTimedOut`` after ``timeout``."""
        if self._broken:
            raise ConnectionLost(self._broken)
        if self.closed:
            raise ConnectionLost(self._lost_reason)
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> bytes:
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    @property
    def has_body(self) -> bool:
        return bool(self._chunks)

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self._start_response()
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimedOut())


class _Pool:
    """Idle keep-alive connections of one event loop, per origin (newest last).

    A connection idle past ``KEEPALIVE_SECONDS`` is closed by a sweep, so a
    quiet process does not hold sockets open on servers it no longer uses.
    """

    def __init__(self) -> None:
        self.idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._sweep: asyncio.TimerHandle | None = None

    def take(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self.idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            connection.close()
        return None

    def give_back(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        idle = self.idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)
        if self._sweep is None:
            self._schedule_sweep(KEEPALIVE_SECONDS)

    def _schedule_sweep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(delay, self._close_expired)

    def _close_expired(self) -> None:
        self._sweep = None
        now = time.monotonic()
        for idle in self.idle.values():
            fresh = [c for c in idle if not c.closed and now - c.idle_since < KEEPALIVE_SECONDS]
            for connection in idle:
                if connection not in fresh:
                    connection.close()
            idle[:] = fresh
        oldest = [idle[0].idle_since for idle in self.idle.values() if idle]
        if oldest:  # next sweep when the oldest kept connection expires
            self._schedule_sweep(max(0.0, min(oldest) + KEEPALIVE_SECONDS - now))


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = _Pool()
    return pool


class Response:
    """A response whose body is read as it arrives; ``aclose()`` it when done, always."""

    __slots__ = ("_connection", "_decoder", "_origin", "_read_timeout", "headers", "status")

    def __init__(
        self, connection: _Connection, origin: tuple[str, str, int], read_timeout: float
    ) -> None:
        self._connection = connection
        self._origin = origin
        self._read_timeout = read_timeout
        self.status = connection.status
        self.headers: Mapping[str, str] = connection.headers
        encoding = self.headers.get("content-encoding", "").strip().lower()
        # wbits: 16 + 15 reads gzip; 32 + 15 detects zlib or gzip ("deflate" in the wild).
        wbits = {"gzip": 31, "x-gzip": 31, "deflate": 47}.get(encoding)
        self._decoder = zlib.decompressobj(wbits) if wbits else None

    async def read(self) -> bytes:
        """The next bytes of the body; ``b""`` once it has ended."""
        connection = self._connection
        while not connection.has_body:
            if connection.complete:
                return self._decoder.flush() if self._decoder else b""  # flush never raises
            await connection.wait(self._read_timeout)
        data = connection.take()
        if self._decoder is None:
            return data
        try:
            return self._decoder.decompress(data)
        except zlib.error as exc:
            connection.close()
            raise ConnectionLost(f"undecodable compressed body: {exc}") from exc

    async def aclose(self) -> None:
        """Keep the connection for the next request if this response ended cleanly."""
        connection = self._connection
        if connection.complete and connection.keep_alive and not connection.closed:
            _pool().give_back(self._origin, connection)
        else:
            connection.close()


def _request_head(target: _Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connect(target: _Target, timeout: float) -> _Connection:
    loop = asyncio.get_running_loop()
    tls = ssl_context() if target.scheme == "https" else None
    try:
        async with asyncio.timeout(timeout):
            _, connection = await loop.create_connection(
                _Connection,
                target.host,
                target.port,
                ssl=tls,
                server_hostname=target.host if tls else None,
            )
    except TimeoutError:
        raise ConnectTimedOut(f"could not connect within {timeout:g}s") from None
    except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
        raise ConnectFailed(str(exc) or type(exc).__name__) from exc
    return connection


async def _await_head(connection: _Connection, read_timeout: float) -> None:
    while not connection.head_done:
        await connection.wait(read_timeout)


async def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
) -> Response:
    """POST ``body`` to ``url``; the ``Response`` once its status and headers are in."""
    target = _target(url)
    message = _request_head(target, body, headers) + body
    connection = _pool().take(target.origin)
    if connection is not None:
        connection.send(message)
        try:
            await _await_head(connection, read_timeout)
            return Response(connection, target.origin, read_timeout)
        except ConnectionLost:
            connection.close()
            if connection.received_any:
                raise
            # The server closed this kept connection as we reused it: not
            # the request's fault, so try once more on a new connection.
        except BaseException:
            connection.close()
            raise
    connection = await _connect(target, connect_timeout)
    try:
        connection.send(message)
        await _await_head(connection, read_timeout)
    except BaseException:
        connection.close()
        raise
    return Response(connection, target.origin, read_timeout)
