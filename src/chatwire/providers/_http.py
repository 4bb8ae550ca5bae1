"""The shared HTTP drivers: one sync, one async, each running a ``WireRequest``.

The drivers own all the I/O and map every transport failure onto the
chatwire error tree; ``Receiver`` holds the I/O-free state both share. The
sync driver talks through httpx (``_pool``); the async one through the lean
client in ``_h1`` (or httpx when a proxy is configured).

``httpx`` is imported inside the drivers, not at module level, so that
``import chatwire`` stays fast.
"""

from __future__ import annotations

__all__ = ["Receiver", "stream_async", "stream_sync"]

import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from .._errors import (
    ProtocolError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
    StreamInterrupted,
)
from .._sse import SSEDecoder
from ._protocol import EndOfStream, WireRequest
from ._reply import AsyncReply, Reply

if TYPE_CHECKING:
    import httpx

    from ._h1 import Response, TransportError
    from ._pool import ProxiedResponse

_ERROR_BODY_BYTES = 512
_MAX_BODY_FACTOR = 16
_DRAIN_SECONDS = 0.25


class Receiver:
    """The I/O-free half of a driver: decode, keep the text, name failures."""

    __slots__ = (
        "_decoder",
        "_last_progress",
        "_lines",
        "done",
        "failed",
        "meta",
        "pieces",
        "request",
    )

    def __init__(self, request: WireRequest, meta: dict[str, Any]) -> None:
        self.request = request
        self.meta = meta
        self._decoder = SSEDecoder(request.max_event_bytes)
        self.pieces: list[Any] = []
        self.done = False
        self.failed: ProviderError | None = None
        self._lines = 0
        self._last_progress = time.monotonic()

    @property
    def partial(self) -> str:
        """The text received so far (other pieces, such as tool-call deltas, left out)."""
        return "".join(piece for piece in self.pieces if piece.__class__ is str)

    def feed(self, chunk: bytes) -> list[Any]:
        """The texts a chunk completes. A fault found in it is kept in ``failed``
        (raised by the driver once these texts are handed on), not raised here."""
        try:
            datas = self._decoder.feed_data(chunk)
        except ProtocolError as exc:
            datas, self.failed = exc.before, exc
        texts: list[Any] = []
        if datas:
            try:
                texts = self.request.read_events(datas, self.meta)
            except EndOfStream as end:
                texts = end.texts
                self.done = True
            except ProviderError as exc:
                texts, self.failed = exc.before, exc  # it came first in the stream
            self.pieces += texts
        if self.failed is None:
            try:
                self._check_progress()
            except ProviderError as exc:
                self.failed = exc
        return texts

    def whole_body(self, body: bytes) -> list[Any]:
        """The answer of a non-streaming exchange, read in one piece."""
        assert self.request.read_body is not None
        self.done = True
        self.pieces += self.request.read_body(body, self.meta)
        return self.pieces

    def check_body_size(self, size: int) -> None:
        if size > _MAX_BODY_FACTOR * self.request.max_event_bytes:
            raise ProtocolError(
                f"response body larger than {_MAX_BODY_FACTOR * self.request.max_event_bytes} bytes"
            )

    def _check_progress(self) -> None:
        # httpx's read timeout restarts on every byte; a server trickling bytes
        # that never complete a line must still time out.
        now = time.monotonic()
        if self._decoder.lines_seen != self._lines:
            self._lines = self._decoder.lines_seen
            self._last_progress = now
        elif now - self._last_progress > self.request.read_timeout:
            raise self.timed_out(
                f"no complete line within the read timeout of {self.request.read_timeout:g}s"
            )

    def timed_out(self, message: str) -> ProviderError:
        partial = self.partial
        if partial:
            return StreamInterrupted(
                f"stream stalled after {len(partial)} characters: {message}",
                provider=self.request.provider,
                url=self.request.url,
                partial=partial,
            )
        return ProviderTimeout(message, provider=self.request.provider, url=self.request.url)

    def failure(self, exc: TransportError) -> ProviderError:
        """Map a transport failure onto the chatwire tree."""
        from ._h1 import ConnectFailed, ConnectTimedOut, ReadTimedOut

        request = self.request
        where: dict[str, Any] = {"provider": request.provider, "url": request.url}
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, ConnectTimedOut):
            return ProviderTimeout(
                f"could not connect within {request.connect_timeout:g}s", **where
            )
        if isinstance(exc, ConnectFailed):
            return ProviderUnreachable(f"cannot connect: {detail}", **where)
        if isinstance(exc, ReadTimedOut):
            return self.timed_out(f"no data within the read timeout of {request.read_timeout:g}s")
        partial = self.partial
        return StreamInterrupted(
            f"connection lost after {len(partial)} characters: {detail}",
            partial=partial,
            **where,
        )

    def annotate(self, exc: ProviderError) -> ProviderError:
        """Fill in what a lower layer (the SSE decoder) could not know."""
        exc.provider = exc.provider or self.request.provider
        exc.url = exc.url or self.request.url
        exc.partial = exc.partial or self.partial
        return exc

    def http_error(self, status: int, head: bytes, headers: Mapping[str, str]) -> ProviderHTTPError:
        body = head[:_ERROR_BODY_BYTES].decode("utf-8", "replace")
        return ProviderHTTPError(
            f"HTTP {status}: {_error_message(body)}",
            status_code=status,
            body=body,
            retry_after=_retry_after(headers.get("retry-after")),
            provider=self.request.provider,
            url=self.request.url,
        )


def _error_message(body: str) -> str:
    """The upstream's own message when the body is an API error object."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.strip()[:300] or "(empty body)"
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return body.strip()[:300]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _timeout(request: WireRequest) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(
        connect=request.connect_timeout,
        read=request.read_timeout,
        write=request.read_timeout,
        pool=request.connect_timeout,
    )


def stream_sync(request: WireRequest) -> Reply:
    """POST the request; its ``Reply`` yields text as it arrives and always closes."""
    meta: dict[str, Any] = {}
    return Reply(_exchange_sync(request, Receiver(request, meta)), meta)


def stream_async(request: WireRequest) -> AsyncReply:
    """The async twin of ``stream_sync``."""
    meta: dict[str, Any] = {}
    return AsyncReply(_exchange_async(request, Receiver(request, meta)), meta)


def _exchange_sync(request: WireRequest, receiver: Receiver) -> Iterator[str]:
    import httpx

    from ._pool import borrow_sync, transport_error

    try:
        with (
            borrow_sync(request.url) as client,
            client.stream(
                "POST",
                request.url,
                content=request.body,
                headers=dict(request.headers),
                timeout=_timeout(request),
            ) as response,
        ):
            if response.status_code >= 400:
                head = b""
                for chunk in response.iter_bytes():
                    head += chunk
                    if len(head) >= _ERROR_BODY_BYTES:
                        break
                raise receiver.http_error(response.status_code, head, response.headers)
            if request.read_body is not None:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    receiver.check_body_size(len(body))
                yield from receiver.whole_body(bytes(body))
                return
            chunks = response.iter_bytes()
            for chunk in chunks:
                yield from receiver.feed(chunk)
                if receiver.failed is not None:
                    raise receiver.failed
                if receiver.done:
                    _read_to_end_sync(response, chunks)
                    return
    except httpx.HTTPError as exc:
        raise receiver.failure(transport_error(exc)) from exc
    except ProviderError as exc:
        raise receiver.annotate(exc) from exc.__cause__


def _read_to_end_sync(response: httpx.Response, chunks: Iterator[bytes]) -> None:
    """The sync twin of ``_read_to_end``: a response read to its end keeps its connection."""
    import httpx

    # httpcore takes the read timeout from the request for every read, so a
    # server that holds the body open after the answer costs a moment, not
    # the whole read timeout.
    timeouts = response.request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        timeouts["read"] = min(timeouts.get("read") or _DRAIN_SECONDS, _DRAIN_SECONDS)
    deadline = time.monotonic() + _DRAIN_SECONDS
    try:
        for _ in chunks:
            if time.monotonic() > deadline:
                return
    except httpx.HTTPError:
        pass


async def _post_async(request: WireRequest) -> Response | ProxiedResponse:
    from . import _h1

    if _h1.uses_proxy(request.url):
        from ._pool import post_via_proxy

        return await post_via_proxy(request.url, request.body, request.headers, _timeout(request))
    return await _h1.post(
        request.url,
        request.body,
        request.headers,
        connect_timeout=request.connect_timeout,
        read_timeout=request.read_timeout,
    )


async def _read_to_end(response: Response | ProxiedResponse) -> None:
    """Read the end of a finished answer so its connection can be reused.

    Servers end the body right after ``[DONE]``; one that keeps it open gets
    a moment, then the connection is closed rather than kept.
    """
    import asyncio

    from ._h1 import TransportError

    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while await response.read():
                pass
    except (TimeoutError, TransportError):
        pass


async def _exchange_async(request: WireRequest, receiver: Receiver) -> AsyncIterator[str]:
    from ._h1 import TransportError

    try:
        response = await _post_async(request)
        try:
            if response.status >= 400:
                head = b""
                while len(head) < _ERROR_BODY_BYTES and (chunk := await response.read()):
                    head += chunk
                raise receiver.http_error(response.status, head, response.headers)
            if request.read_body is not None:
                body = bytearray()
                while chunk := await response.read():
                    body += chunk
                    receiver.check_body_size(len(body))
                for text in receiver.whole_body(bytes(body)):
                    yield text
                return
            while chunk := await response.read():
                for text in receiver.feed(chunk):
                    yield text
                if receiver.failed is not None:
                    raise receiver.failed
                if receiver.done:
                    await _read_to_end(response)
                    return
        finally:
            await response.aclose()
    except TransportError as exc:
        raise receiver.failure(exc) from exc
    except ProviderError as exc:
        raise receiver.annotate(exc) from exc.__cause__
