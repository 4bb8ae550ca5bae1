"""The async driver's own HTTP/1.1 client, against raw servers on 127.0.0.1.

These servers write bytes by hand, so they can do what no ASGI app can:
close a kept connection as it is reused, end a body by closing, compress,
refuse to read, speak broken HTTP, or act as a forward proxy.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
import trustme

import chatwire
from chatwire.providers import _h1

from .servers import delta_event

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
MESSAGES = [{"role": "user", "content": "hi"}]
BODY = delta_event("Hello") + delta_event(", world")


class RawServer:
    """An asyncio server in a thread; ``handler(reader, writer, n)`` serves connection n."""

    def __init__(self, handler: Handler, ssl_context: object = None) -> None:
        self.handler = handler
        self.connections = 0
        self.request_lines: list[bytes] = []
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)  # type: ignore[arg-type]
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.request_lines.append(head.split(b"\r\n", 1)[0])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)

    def url(self, path: str = "/free-chat", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def sized(body: bytes, *headers: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" + b"".join(headers)
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


async def ask(url: str, **options: object) -> str:
    stream = await chatwire.ChatCompletion.acreate(
        messages=MESSAGES, provider="forefront", base_url=url, stream=True, max_retries=0, **options
    )
    return "".join([piece async for piece in stream])


def test_keeps_the_connection_for_the_next_request() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(sized(BODY))

    async def twice(url: str) -> list[str]:
        return [await ask(url), await ask(url)]

    with RawServer(handler) as server:
        assert asyncio.run(twice(server.url())) == ["Hello, world"] * 2
        assert server.connections == 1


def test_an_idle_kept_connection_is_closed_after_the_keepalive_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_h1, "KEEPALIVE_SECONDS", 0.2)
    closed = threading.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))
        await reader.read()  # b"" once the client closes its side
        closed.set()

    async def ask_then_idle(url: str) -> tuple[str, bool]:
        text = await ask(url)
        # The client stays alive, doing nothing, until the server sees the close:
        # it can only come from the sweep, not from the loop shutting down.
        return text, await asyncio.to_thread(closed.wait, 60)

    with RawServer(handler) as server:
        assert asyncio.run(ask_then_idle(server.url())) == ("Hello, world", True)


def test_a_kept_connection_closed_on_reuse_is_retried_on_a_new_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))
        await writer.drain()
        await server.read_request(reader)  # the reuse: closed without a word

    async def twice(url: str) -> list[str]:
        return [await ask(url), await ask(url)]

    with RawServer(handler) as server:
        assert asyncio.run(twice(server.url())) == ["Hello, world"] * 2
        assert server.connections == 2


def test_a_new_connection_closed_without_an_answer_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)

    with RawServer(handler) as server, pytest.raises(chatwire.StreamInterrupted) as caught:
        asyncio.run(ask(server.url()))
    assert server.connections == 1
    assert caught.value.partial == ""


def test_body_that_ends_when_the_connection_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + delta_event("Hello"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(delta_event(", world"))

    with RawServer(handler) as server:
        assert asyncio.run(ask(server.url())) == "Hello, world"


def test_gzip_body_is_decoded() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(gzip.compress(BODY), b"content-encoding: gzip\r\n"))

    with RawServer(handler) as server:
        assert asyncio.run(ask(server.url())) == "Hello, world"


def test_undecodable_gzip_is_an_interruption() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(b"not gzip at all", b"content-encoding: gzip\r\n"))

    with RawServer(handler) as server, pytest.raises(chatwire.StreamInterrupted) as caught:
        asyncio.run(ask(server.url()))
    assert "undecodable compressed body" in str(caught.value)


def test_broken_http_is_an_interruption_that_keeps_the_text() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        first = delta_event("Hello")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"not-a-chunk-size\r\n")

    with RawServer(handler) as server, pytest.raises(chatwire.StreamInterrupted) as caught:
        asyncio.run(ask(server.url()))
    assert caught.value.partial == "Hello"
    assert "malformed HTTP response" in str(caught.value)


def test_reading_pauses_while_the_caller_lags() -> None:
    """A caller that stops reading must stop the bytes, not buffer them all."""
    stalled = threading.Event()
    measured = threading.Event()
    backlog: list[int] = []
    event = delta_event("x" * 1000)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
        writer.write(event * 32_000)  # 32 MB at once: what the client does not take stays here
        for _ in range(100):
            await asyncio.sleep(0.05)
            if writer.transport.get_write_buffer_size() > 0 and stalled.is_set():
                break
        backlog.append(writer.transport.get_write_buffer_size())
        measured.set()

    async def read_one_then_lag(url: str) -> None:
        stream = await chatwire.ChatCompletion.acreate(
            messages=MESSAGES, provider="forefront", base_url=url, stream=True, max_retries=0
        )
        await anext(stream)
        stalled.set()
        await asyncio.to_thread(measured.wait, 60)  # lagging until the server has looked
        await stream.aclose()

    with RawServer(handler) as server:
        asyncio.run(read_one_then_lag(server.url()))
    # Kernel socket buffers hold a few MB at most; the rest waited at the server.
    assert backlog
    assert backlog[0] > 16_000_000


@pytest.fixture
def proxy_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def use(proxy: str) -> None:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        _h1.proxies.cache_clear()
        _h1.uses_proxy.cache_clear()

    yield use
    monkeypatch.undo()
    _h1.proxies.cache_clear()
    _h1.uses_proxy.cache_clear()


def test_a_configured_proxy_is_used(proxy_environment: Callable[[str], None]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY, b"connection: close\r\n"))

    with RawServer(handler) as server:
        proxy_environment(server.url("/"))
        assert asyncio.run(ask("http://chat.example/free-chat")) == "Hello, world"
    # A forward proxy is sent the whole URL.
    assert server.request_lines == [b"POST http://chat.example/free-chat HTTP/1.1"]


def test_https_with_a_trusted_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))

    with authority.cert_pem.tempfile() as ca_file:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
        _h1.ssl_context.cache_clear()
        try:
            with RawServer(handler, context) as server:
                assert asyncio.run(ask(server.url(scheme="https"))) == "Hello, world"
            # An untrusted certificate is refused before any request is sent.
            monkeypatch.delenv("SSL_CERT_FILE")
            _h1.ssl_context.cache_clear()
            with (
                RawServer(handler, context) as server,
                pytest.raises(chatwire.ProviderUnreachable, match="CERTIFICATE_VERIFY_FAILED"),
            ):
                asyncio.run(ask(server.url(scheme="https")))
            assert server.request_lines == []
        finally:
            _h1.ssl_context.cache_clear()
