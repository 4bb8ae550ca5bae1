"""The async driver: aiohttp, one session per event loop, its pool kept between calls.

A session belongs to the loop it was made on. When ``asyncio.run`` ends a
loop, it closes the session with it (an async generator parked on the loop
does that when the loop finalises its generators); a server's loop ends by
``AsyncDriver.aclose``.

aiohttp resends a request whose kept connection the server closed only for
idempotent methods; a POST is resent here, once, when the server closed the
connection before any answer (a stale kept connection does just that); the
sync driver does the same.
"""

from __future__ import annotations

__all__ = ["AsyncDriver", "AsyncResponse"]

import asyncio
import threading
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING

import aiohttp

from ._errors import ConnectFailed, ConnectionLost, ConnectTimedOut, ReadTimedOut, TransportError
from ._settings import KEEPALIVE_SECONDS

if TYPE_CHECKING:
    from ._settings import Settings

# A server closing a kept connection as it is reused looks like one of these
# (a connection that could not be made at all is a ClientConnectorError).
_STALE = (
    aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientConnectionResetError
)  # fmt: skip


def transport_error(exc: BaseException) -> TransportError:
    """An aiohttp failure as a ``TransportError``."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimedOut(detail)
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError)):
        return ConnectFailed(detail)
    if isinstance(exc, (aiohttp.SocketTimeoutError, TimeoutError)):
        return ReadTimedOut(detail)
    return ConnectionLost(detail)


class AsyncResponse:
    """A streamed response: its status, headers and body as it arrives."""

    __slots__ = (
        "_loop", "_read_timeout", "_response", "_waiting_since", "_watch", "headers", "status"
    )  # fmt: skip

    def __init__(self, response: aiohttp.ClientResponse, read_timeout: float) -> None:
        self._response = response
        self._read_timeout = read_timeout
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        # The read timeout of the body is kept here, with one timer a response:
        # aiohttp's own moves a timer on every chunk (a tenth of the CPU an event
        # costs), and its C parser can wait for ever on a malformed chunk-size
        # line even once the server has closed, which this timer ends too.
        # Only time spent waiting in ``read`` counts: a caller that is slow to ask
        # for the next piece is not a silent server.
        self._loop = asyncio.get_running_loop()
        self._waiting_since: float | None = None
        self._watch = self._loop.call_later(read_timeout, self._check_progress)

    def _check_progress(self) -> None:
        since = self._waiting_since
        silent = 0.0 if since is None else self._loop.time() - since
        if silent < self._read_timeout:
            self._watch = self._loop.call_later(self._read_timeout - silent, self._check_progress)
            return
        self._response.content.set_exception(
            ReadTimedOut(f"nothing read for {self._read_timeout:g}s")
        )

    async def read(self) -> bytes:
        """What has arrived of the body (decompressed); ``b""`` at its end."""
        self._waiting_since = self._loop.time()
        try:
            return await self._response.content.readany()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc) from exc
        finally:
            self._waiting_since = None

    async def drain(self, seconds: float) -> None:
        """Read the end of the body for at most ``seconds``, so the connection is kept."""
        try:
            async with asyncio.timeout(seconds):
                while await self._response.content.readany():
                    pass
        except (aiohttp.ClientError, TimeoutError, TransportError):
            pass

    async def aclose(self) -> None:
        self._watch.cancel()
        # A body read to its end hands the connection back; one cut short closes it.
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


class _LoopSession:
    """A session and what closes it with its loop."""

    __slots__ = ("closer", "session")

    def __init__(self, session: aiohttp.ClientSession, closer: AsyncGenerator[None, None]) -> None:
        self.session = session
        self.closer = closer


async def _close_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()


class AsyncDriver:
    """POSTs over one aiohttp session per event loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}
        # Loops may run on several threads, each adding its session.
        self._lock = threading.Lock()

    async def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        kept = self._sessions.get(loop)
        if kept is not None and not kept.session.closed:
            return kept.session
        self.close()  # sessions of loops that ended
        connector = aiohttp.TCPConnector(
            limit=0,
            ssl=self._settings.ssl_context(),
            keepalive_timeout=KEEPALIVE_SECONDS,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            # The proxies were read when the transport was made; none from here on.
            trust_env=False,
            # No cookies kept: one caller's must never reach another's request.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )
        closer = _close_with_loop(session)
        await anext(closer)
        with self._lock:
            self._sessions[loop] = _LoopSession(session, closer)
        return session

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        connect_timeout: float,
        read_timeout: float,
    ) -> AsyncResponse:
        """The response to a POST, its body left to read; ``aclose`` it."""
        session = await self._session()
        # The body's read timeout is AsyncResponse's; until the head, one bound.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=None
        )
        proxy = self._settings.proxy_for(url)
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(connect_timeout + read_timeout):
                    response = await session.post(
                        url, data=body, headers=headers, timeout=timeout, proxy=proxy,
                        allow_redirects=False,
                    )  # fmt: skip
            except aiohttp.ClientConnectorError as exc:
                raise transport_error(exc) from exc
            except _STALE as exc:
                if attempt == 1:
                    continue
                raise transport_error(exc) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise transport_error(exc) from exc
            return AsyncResponse(response, read_timeout)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the session of the running loop (others close with their loops)."""
        with self._lock:
            kept = self._sessions.pop(asyncio.get_running_loop(), None)
        if kept is not None:
            await kept.closer.aclose()  # which closes the session

    def close(self) -> None:
        """Forget sessions whose loops have ended (their loops closed them)."""
        with self._lock:
            kept = self._sessions.items()
            self._sessions = {loop: each for loop, each in kept if not loop.is_closed()}
