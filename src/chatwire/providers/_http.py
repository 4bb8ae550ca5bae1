"""Running a ``WireRequest`` over a transport, sync or async, into a ``Reply``.

The transport (``chatwire._transport``: httpx for sync, aiohttp for async)
does the I/O; ``Receiver`` holds the I/O-free state both modes share
(decoding, the text so far, progress) and maps transport failures onto the
chatwire error tree.
"""

from __future__ import annotations

__all__ = ["HTTPProvider", "Receiver", "stream_async", "stream_sync"]

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
from ._base import Provider
from ._protocol import EndOfStream, WireRequest
from ._reply import AsyncReply, Reply

if TYPE_CHECKING:
    from .._models import ChatRequest
    from .._transport import Transport, TransportError

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
        from .._transport import ConnectFailed, ConnectTimedOut, ReadTimedOut

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


class HTTPProvider(Provider):
    """A provider over HTTP: it describes its exchange in ``wire``; the drivers run it."""

    def wire(self, request: ChatRequest, model: str, options: Mapping[str, Any]) -> WireRequest:
        """The exchange for a checked request, free of I/O."""
        raise NotImplementedError

    def stream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> Reply:
        return stream_sync(self.wire(request, model, options), transport)

    def astream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> AsyncReply:
        return stream_async(self.wire(request, model, options), transport)


def stream_sync(request: WireRequest, transport: Transport | None = None) -> Reply:
    """POST the request; its ``Reply`` yields text as it arrives and always closes."""
    meta: dict[str, Any] = {}
    return Reply(_exchange_sync(request, Receiver(request, meta), transport), meta)


def stream_async(request: WireRequest, transport: Transport | None = None) -> AsyncReply:
    """The async twin of ``stream_sync``."""
    meta: dict[str, Any] = {}
    return AsyncReply(_exchange_async(request, Receiver(request, meta), transport), meta)


def _exchange_sync(
    request: WireRequest, receiver: Receiver, transport: Transport | None
) -> Iterator[Any]:
    from .._transport import TransportError, shared

    driver = (transport or shared()).sync
    try:
        with driver.post(
            request.url, request.body, request.headers,
            request.connect_timeout, request.read_timeout,
        ) as response:  # fmt: skip
            chunks = response.chunks()
            if response.status >= 400:
                head = b""
                for chunk in chunks:
                    head += chunk
                    if len(head) >= _ERROR_BODY_BYTES:
                        break
                raise receiver.http_error(response.status, head, response.headers)
            if request.read_body is not None:
                body = bytearray()
                for chunk in chunks:
                    body += chunk
                    receiver.check_body_size(len(body))
                yield from receiver.whole_body(bytes(body))
                return
            for chunk in chunks:
                yield from receiver.feed(chunk)
                if receiver.failed is not None:
                    raise receiver.failed
                if receiver.done:
                    response.drain(_DRAIN_SECONDS)
                    return
    except TransportError as exc:
        raise receiver.failure(exc) from exc
    except ProviderError as exc:
        raise receiver.annotate(exc) from exc.__cause__


async def _exchange_async(
    request: WireRequest, receiver: Receiver, transport: Transport | None
) -> AsyncIterator[Any]:
    from .._transport import TransportError, shared

    driver = (transport or shared()).async_
    try:
        response = await driver.post(
            request.url, request.body, request.headers,
            request.connect_timeout, request.read_timeout,
        )  # fmt: skip
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
                    await response.drain(_DRAIN_SECONDS)
                    return
        finally:
            await response.aclose()
    except TransportError as exc:
        raise receiver.failure(exc) from exc
    except ProviderError as exc:
        raise receiver.annotate(exc) from exc.__cause__
