"""Reused HTTP clients, each lent to one request at a time.

A client is borrowed for one exchange and handed back when it ends; it keeps
its one connection open (keep-alive), so the next request to the same server
skips the TCP (and TLS) handshake. A response that is not read to its end is
not kept: httpcore closes its connection, so a caller who stops early still
closes the connection at once.

Why not one shared client? httpcore's pool scans every connection it holds on
each request and each release; with a hundred streams in flight that scan
took half the gateway's CPU (measured with bench/gateway.py). A client that
never holds more than one connection makes each scan trivial.

Sync callers share one set of clients per process (a forked child starts its
own); async callers one set per event loop, which goes away with its loop.
"""

from __future__ import annotations

__all__ = ["borrow_async", "borrow_sync"]

import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import ssl
    from asyncio import AbstractEventLoop

# Below the 5 s idle timeout common in servers (uvicorn, nginx), so a kept
# connection is rarely reused just as the server closes it.
KEEPALIVE_SECONDS = 4.0
# Idle clients kept per server (each with at most one open connection).
MAX_IDLE_PER_ORIGIN = 64

_lock = threading.Lock()
_sync: dict[int, dict[str, list[httpx.Client]]] = {}
_async: weakref.WeakKeyDictionary[AbstractEventLoop, dict[str, list[httpx.AsyncClient]]] = (
    weakref.WeakKeyDictionary()
)


@cache
def _ssl_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (tens of ms): do it once per process.
    import ssl

    import certifi

    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())


@cache
def _proxies_in_environment() -> bool:
    # httpx scans the whole environment for proxy settings on every client it
    # builds; with none set, as is usual, there is nothing to find.
    from urllib.request import getproxies_environment

    return bool(getproxies_environment())


def _settings() -> dict[str, Any]:
    return {
        "verify": _ssl_context(),
        "trust_env": _proxies_in_environment(),
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


@asynccontextmanager
async def borrow_async(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The async twin of ``borrow_sync``, for the running event loop."""
    import asyncio

    origin = _origin(url)
    idle = _async.setdefault(asyncio.get_running_loop(), {}).setdefault(origin, [])
    client = idle.pop() if idle else httpx.AsyncClient(**_settings())
    try:
        yield client
    finally:
        if len(idle) < MAX_IDLE_PER_ORIGIN:
            idle.append(client)
        else:
            await client.aclose()
