"""The sync driver: httpx clients whose pools live as long as their transport.

One client talks directly, and one more through each proxy in use: the
transport's settings pick the proxy for each URL (``NO_PROXY`` included),
the same way for both drivers, from the environment as it was when the
transport was made. httpx is not let read the environment itself, so it
also takes no ``.netrc`` credentials, which a provider's key must not mix with.
"""

from __future__ import annotations

__all__ = ["SyncDriver", "SyncResponse"]

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING

import httpx

from ._errors import ConnectFailed, ConnectionLost, ConnectTimedOut, ReadTimedOut, TransportError
from ._settings import KEEPALIVE_SECONDS

if TYPE_CHECKING:
    from ._settings import Settings


# A server closing a kept connection as it is reused looks like one of these.
_STALE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def transport_error(exc: httpx.HTTPError) -> TransportError:
    """An httpx failure as a ``TransportError``."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimedOut(detail)
    if isinstance(exc, (httpx.ConnectError, httpx.ProxyError)):
        return ConnectFailed(detail)
    if isinstance(exc, httpx.TimeoutException):
        return ReadTimedOut(detail)
    return ConnectionLost(detail)


class SyncResponse:
    """A streamed response: its status, headers and body chunks."""

    __slots__ = ("_chunks", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes()
        self.status = response.status_code
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives, decompressed."""
        try:
            yield from self._chunks
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc

    def drain(self, seconds: float) -> None:
        """Read the end of the body, so the connection is kept.

        Servers end the body right after the answer's last event, and httpcore
        may hold that end already. One that holds the body open costs the read
        timeout at worst: httpcore fixes a read's timeout when the body starts,
        and it cannot be told whether the end is buffered.
        """
        deadline = time.monotonic() + seconds
        try:
            for _ in self._chunks:
                if time.monotonic() > deadline:
                    return
        except httpx.HTTPError:
            pass


class SyncDriver:
    """POSTs over httpx clients, one a proxy (or none); safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str | None, httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, url: str) -> httpx.Client:
        proxy = self._settings.proxy_for(url)
        client = self._clients.get(proxy)
        if client is None:
            with self._lock:
                client = self._clients.get(proxy)
                if client is None:
                    client = self._clients[proxy] = httpx.Client(
                        proxy=proxy,
                        verify=self._settings.ssl_context(),
                        trust_env=False,
                        limits=httpx.Limits(
                            max_connections=None,
                            max_keepalive_connections=64,
                            keepalive_expiry=KEEPALIVE_SECONDS,
                        ),
                    )
                    # No cookies kept: one caller's must never reach another's request.
                    client.cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        return client

    @contextmanager
    def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> Iterator[SyncResponse]:
        """The response to a POST, open for reading until the block ends."""
        timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        client = self._client(url)
        request = client.build_request(
            "POST", url, content=body, headers=dict(headers), timeout=timeout
        )
        try:
            try:
                response = client.send(request, stream=True)
            except _STALE:
                # A kept connection the server closed as it was reused: once more, anew.
                response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        try:
            yield SyncResponse(response)
        finally:
            response.close()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
