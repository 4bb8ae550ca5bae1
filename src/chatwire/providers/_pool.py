"""Shared connection pools: one per process for sync callers, one per event loop for async.

Sharing a pool so consecutive requests to the
same server skip the TCP (and TLS) handshake. A response that is not read to
its end is not pooled: httpcore closes its connection, so a caller who stops
early still closes the connection at once.
"""

from __future__ import annotations

__all__ = ["send_async", "send_sync"]

import os
import threading
import weakref
from functools import cache
from typing import TYPE_CHECKING

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


def _limits() -> httpx.Limits:
    return httpx.Limits(
        max_connections=None,
        max_keepalive_connections=MAX_IDLE_CONNECTIONS,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )


# Requests go straight to a transport (httpx's connection pool) when no proxy
# is configured: httpx's client layer (URL and header merging, cookies, auth
# and redirect handling, none of which a provider uses) costs about a fifth of
# a request's CPU on a busy gateway. With a proxy, the client routes it.
SyncSender = httpx.Client | httpx.HTTPTransport
AsyncSender = httpx.AsyncClient | httpx.AsyncHTTPTransport

_lock = threading.Lock()
_sync: dict[int, SyncSender] = {}
_async: weakref.WeakKeyDictionary[AbstractEventLoop, AsyncSender] = weakref.WeakKeyDictionary()


def _new_sync() -> SyncSender:
    if _proxies_in_environment():
        return httpx.Client(verify=_ssl_context(), trust_env=True, limits=_limits())
    return httpx.HTTPTransport(verify=_ssl_context(), limits=_limits())


def _new_async() -> AsyncSender:
    if _proxies_in_environment():
        return httpx.AsyncClient(verify=_ssl_context(), trust_env=True, limits=_limits())
    return httpx.AsyncHTTPTransport(verify=_ssl_context(), limits=_limits())


def send_sync(request: httpx.Request) -> httpx.Response:
    """Send on this process's pool (a forked child gets its own, not its parent's
    sockets); the response body is not read yet. Close the response when done."""
    pid = os.getpid()
    sender = _sync.get(pid)
    if sender is None:
        with _lock:
            sender = _sync.get(pid)
            if sender is None:
                _sync.clear()
                sender = _sync[pid] = _new_sync()
    if isinstance(sender, httpx.Client):
        return sender.send(request, stream=True)
    response = sender.handle_request(request)
    response.request = request
    return response


async def send_async(request: httpx.Request) -> httpx.Response:
    """The async twin of ``send_sync``: one pool per event loop, gone with its loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    sender = _async.get(loop)
    if sender is None:
        sender = _async[loop] = _new_async()
    if isinstance(sender, httpx.AsyncClient):
        return await sender.send(request, stream=True)
    response = await sender.handle_async_request(request)
    response.request = request
    return response
