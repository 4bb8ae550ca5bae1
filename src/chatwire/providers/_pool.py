"""Shared HTTP clients: one per process for sync callers, one per event loop for async.

Sharing a client shares its connection pool, so consecutive requests to the
same server skip the TCP (and TLS) handshake. A response that is not read to
its end is not pooled: httpcore closes its connection, so a caller who stops
early still closes the connection at once.
"""

from __future__ import annotations

__all__ = ["async_client", "sync_client"]

import os
import threading
import weakref
from functools import cache
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import ssl
    from asyncio import AbstractEventLoop

# Below the 5 s idle timeout common in servers (uvicorn, nginx), so a pooled
# connection is rarely reused just as the server closes it.
KEEPALIVE_SECONDS = 4.0
# Few idle connections are kept: httpcore scans its whole pool on every request
# and release; measured with bench/gateway.py, 256 kept made 100 streams far
# slower than 64 (the scan costs more than an occasional reconnect).
MAX_IDLE_CONNECTIONS = 64

_lock = threading.Lock()
_sync: dict[int, httpx.Client] = {}
_async: weakref.WeakKeyDictionary[AbstractEventLoop, httpx.AsyncClient] = (
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
            max_connections=None,
            max_keepalive_connections=MAX_IDLE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_SECONDS,
        ),
    }


def sync_client() -> httpx.Client:
    """This process's client (a forked child gets its own, not its parent's sockets)."""
    pid = os.getpid()
    client = _sync.get(pid)
    if client is None:
        with _lock:
            client = _sync.get(pid)
            if client is None:
                _sync.clear()
                client = _sync[pid] = httpx.Client(**_settings())
    return client


def async_client() -> httpx.AsyncClient:
    """The running event loop's client; it goes away with its loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    client = _async.get(loop)
    if client is None:
        client = _async[loop] = httpx.AsyncClient(**_settings())
    return client
