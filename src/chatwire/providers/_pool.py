"""The httpx side: reused clients for the sync driver, and the async proxy path.

A sync client is borrowed for one exchange and handed back when it ends; it
keeps its one connection open (keep-alive), so the next request to the same
server skips the TCP (and TLS) handshake. A response that is not read to its
end is not kept: httpcore closes its connection, so a caller who stops early
still closes the connection at once.

Why not one shared client? httpcore's pool scans every connection it holds on
each request and each release; with a hundred streams in flight that scan
took half the gateway's CPU (measured with bench/gateway.py). A client that
never holds more than one connection makes each scan trivial.

Sync callers share one set of clients per process (a forked child starts its
own). Async exchanges use ``_h1`` unless a proxy is configured for the URL;
then ``post_via_proxy`` runs them through httpx, which knows proxies.
"""

from __future__ import annotations

__all__ = ["ProxiedResponse", "borrow_sync", "post_via_proxy", "transport_error"]

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from ._h1 import (
    KEEPALIVE_SECONDS,
    ConnectFailed,
    ConnectionLost,
    ConnectTimedOut,
    ReadTimedOut,
    TransportError,
    proxies,
    ssl_context,
)

# Idle clients kept per server (each with at most one open connection).
MAX_IDLE_PER_ORIGIN = 64

_lock = threading.Lock()
_sync: dict[int, dict[str, list[httpx.Client]]] = {}


def _settings() -> dict[str, Any]:
    return {
        "verify": ssl_context(),
        # httpx scans the whole environment for proxy settings on every client
        # it builds; with none set, as is usual, there is nothing to find.
        "trust_env": bool(proxies()),
        "limits": httpx.Limits(
            max_connections=None, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_SECONDS
        ),
    }


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return scheme + "://" + rest.split("/", 1)[0]


@contextmanager
def borrow_sync(url: str) -> Iterator[httpx.Client]:
    """A client for one exchange with ``url``'s server; handed back afterwards."""
    origin = _origin(url)
    with _lock:
        idle = _sync.setdefault(os.getpid(), {}).setdefault(origin, [])
        client = idle.pop() if idle else None
    if client is None:
        client = httpx.Client(**_settings())
    try:
        yield client
    finally:
        with _lock:
            idle = _sync.setdefault(os.getpid(), {}).setdefault(origin, [])
            keep = len(idle) < MAX_IDLE_PER_ORIGIN
            if keep:
                idle.append(client)
        if not keep:
            client.close()


def transport_error(exc: httpx.HTTPError) -> TransportError:
    """An httpx failure as the transport error ``_h1`` would have raised."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimedOut(detail)
    if isinstance(exc, httpx.ConnectError):
        return ConnectFailed(detail)
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimedOut(detail)
    return ConnectionLost(detail)


class ProxiedResponse:
    """An httpx response behind the same small interface as ``_h1.Response``."""

    def __init__(self, client: httpx.AsyncClient, response: httpx.Response) -> None:
        self._client = client
        self._response = response
        self._chunks = response.aiter_bytes()
        self.status = response.status_code
        self.headers = response.headers

    async def read(self) -> bytes:
        try:
            return await anext(self._chunks, b"")
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()
        await self._client.aclose()


async def post_via_proxy(
    url: str, body: bytes, headers: Mapping[str, str], timeout: httpx.Timeout
) -> ProxiedResponse:
    """POST through the proxy the environment names, with a client of its own."""
    client = httpx.AsyncClient(verify=ssl_context(), trust_env=True)
    try:
        request = client.build_request(
            "POST", url, content=body, headers=dict(headers), timeout=timeout
        )
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise transport_error(exc) from exc
    except BaseException:
        await client.aclose()
        raise
    return ProxiedResponse(client, response)
