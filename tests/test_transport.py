"""Both HTTP drivers (httpx for sync calls, aiohttp for async ones), the same cases each.

The servers here write bytes by hand on 127.0.0.1, so they can do what no
ASGI app can: close a kept connection as it is reused, end a body by
closing, compress, use every corner of chunked encoding, speak broken HTTP,
or act as a forward proxy and a CONNECT proxy. Each test makes its own
``chatwire.Client`` after setting the environment, since a client reads the
CA bundle and proxies when it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ssl
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import trustme

import chatwire
from chatwire._transport import _async
from chatwire._transport._settings import Settings

from .servers import delta_event

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
MESSAGES = [{"role": "user", "content": "hi"}]
BODY = delta_event("Hello") + delta_event(", world")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE")


class RawServer:
    """An asyncio server in a thread; ``handler(reader, writer, n)`` serves connection n."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.connections = 0
        self.request_lines: list[bytes] = []
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @classmethod
    def answering(
        cls, response: bytes, *, kept: bool = True, ssl_context: ssl.SSLContext | None = None
    ) -> RawServer:
        """A server answering every request with ``response`` (only the first on each
        connection, which it then closes, unless ``kept``)."""

        async def handler(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int
        ) -> None:
            while True:
                await server.read_request(reader)
                writer.write(response)
                if not kept:
                    return

        server = cls(handler, ssl_context)
        return server

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
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
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """Read one request; its head."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.request_lines.append(head.split(b"\r\n", 1)[0])
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        await reader.readexactly(length)
        return head

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


def chunk(data: bytes, extension: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The proxy and CA variables, all unset, for a test to set."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def ask(mode: str, url: str, times: int = 1, **options: Any) -> list[str]:
    """``times`` answers in a row from one new client, sync or async."""
    if mode == "sync":
        with chatwire.Client() as client:
            answers = []
            for _ in range(times):
                stream = client.create(
                    messages=MESSAGES, provider="forefront", base_url=url, stream=True,
                    max_retries=0, **options,
                )  # fmt: skip
                with stream:
                    answers.append("".join(stream))
            return answers

    async def main() -> list[str]:
        async with chatwire.Client() as client:
            answers = []
            for _ in range(times):
                stream = await client.acreate(
                    messages=MESSAGES, provider="forefront", base_url=url, stream=True,
                    max_retries=0, **options,
                )  # fmt: skip
                async with stream:
                    answers.append("".join([piece async for piece in stream]))
            return answers

    return asyncio.run(main())


# -- keep-alive ---------------------------------------------------------------------


def test_requests_in_a_row_use_one_connection(mode: str) -> None:
    with RawServer.answering(sized(BODY)) as server:
        assert ask(mode, server.url(), times=4) == ["Hello, world"] * 4
        assert server.connections == 1


def test_a_connection_the_server_closes_after_answering_is_not_reused(mode: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))  # kept, as far as the headers say
        await writer.drain()
        writer.close()

    with RawServer(handler) as server:
        assert ask(mode, server.url(), times=3) == ["Hello, world"] * 3
        assert server.connections == 3


def test_a_kept_connection_closed_on_reuse_is_retried_on_a_new_one(mode: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))
        await writer.drain()
        if n == 1:
            await server.read_request(reader)  # the reuse: closed without a word

    with RawServer(handler) as server:
        assert ask(mode, server.url(), times=2) == ["Hello, world"] * 2
        assert server.connections == 2


def test_a_server_that_closes_without_an_answer_is_an_error(mode: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)

    with RawServer(handler) as server, pytest.raises(chatwire.StreamInterrupted) as caught:
        ask(mode, server.url())
    assert caught.value.partial == ""


def test_an_idle_kept_connection_is_closed_after_the_keepalive_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aiohttp closes idle connections on a timer; httpx only when its pool is next used.
    monkeypatch.setattr(_async, "KEEPALIVE_SECONDS", 0.2)
    closed = threading.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))
        await reader.read()  # b"" once the client closes its side
        closed.set()

    async def ask_then_idle(url: str) -> tuple[str, bool]:
        async with chatwire.Client() as client:
            text = await client.acreate(
                messages=MESSAGES, provider="forefront", base_url=url, max_retries=0
            )
            # The client stays open, doing nothing, until the server sees the close.
            return text, await asyncio.to_thread(closed.wait, 60)

    with RawServer(handler) as server:
        assert asyncio.run(ask_then_idle(server.url())) == ("Hello, world", True)


# -- bodies -------------------------------------------------------------------------


def test_a_body_that_ends_when_the_connection_closes(mode: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + delta_event("Hello"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(delta_event(", world"))

    with RawServer(handler) as server:
        assert ask(mode, server.url()) == ["Hello, world"]


@pytest.mark.parametrize("framing", ["sized", "chunked"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_are_decoded(mode: str, encoding: str, framing: str) -> None:
    packed = gzip.compress(BODY) if encoding == "gzip" else zlib.compress(BODY)
    header = b"content-encoding: %s\r\n" % encoding.encode()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        head = await server.read_request(reader)
        assert encoding.encode() in head.lower()  # the client said it accepts it
        if framing == "sized":
            writer.write(sized(packed, header))
            return
        writer.write(CHUNKED_HEAD + header + b"\r\n")
        middle = len(packed) // 2
        writer.write(chunk(packed[:middle]))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(chunk(packed[middle:]) + b"0\r\n\r\n")

    with RawServer(handler) as server:
        assert ask(mode, server.url()) == ["Hello, world"]


def test_an_undecodable_compressed_body_is_an_interruption(mode: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(b"not gzip at all", b"content-encoding: gzip\r\n"))

    with RawServer(handler) as server, pytest.raises(chatwire.StreamInterrupted):
        ask(mode, server.url())


def test_chunk_extensions_trailers_and_split_size_lines(mode: str) -> None:
    first, second = delta_event("Hello"), delta_event(", world")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD + b"trailer: x-checksum\r\n\r\n")
            writer.write(chunk(first, b';name="value";flag'))
            await writer.drain()
            await asyncio.sleep(0.02)
            # The size line of the next chunk arrives in two reads.
            size = b"%x" % len(second)
            writer.write(size[:1])
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(size[1:] + b"\r\n" + second + b"\r\n")
            writer.write(b"0\r\nx-checksum: 1234\r\n\r\n")

    with RawServer(handler) as server:
        assert ask(mode, server.url(), times=2) == ["Hello, world"] * 2
        # The trailer was read to the end: the connection was kept for the second answer.
        assert server.connections == 1


def test_broken_http_is_an_interruption_that_keeps_the_text(mode: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + b"\r\n" + chunk(delta_event("Hello")))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"not-a-chunk-size\r\n")

    # aiohttp's C parser does not report a bad chunk-size line after data; the
    # read timeout ends the wait there (httpx names the fault at once).
    with RawServer(handler) as server, pytest.raises(chatwire.StreamInterrupted) as caught:
        ask(mode, server.url(), read_timeout=1)
    assert caught.value.partial == "Hello"


def test_reading_pauses_while_the_caller_lags(mode: str) -> None:
    """A caller that stops reading must stop the bytes, not buffer them all."""
    stalled = threading.Event()
    measured = threading.Event()
    backlog: list[int] = []
    event = delta_event("x" * 1000)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
        writer.write(event * 32_000)  # 32 MB at once: what the client does not take stays here
        while not stalled.is_set() or writer.transport.get_write_buffer_size() == 0:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the client has stopped; let what it would read, arrive
        backlog.append(writer.transport.get_write_buffer_size())
        measured.set()

    def lag(url: str) -> None:
        with chatwire.Client() as client:
            stream = client.create(
                messages=MESSAGES, provider="forefront", base_url=url, stream=True, max_retries=0
            )
            with stream:
                next(stream)
                stalled.set()
                measured.wait(60)

    async def alag(url: str) -> None:
        async with chatwire.Client() as client:
            stream = await client.acreate(
                messages=MESSAGES, provider="forefront", base_url=url, stream=True, max_retries=0
            )
            async with stream:
                await anext(stream)
                stalled.set()
                await asyncio.to_thread(measured.wait, 60)

    with RawServer(handler) as server:
        if mode == "sync":
            lag(server.url())
        else:
            asyncio.run(alag(server.url()))
    # Kernel socket buffers hold a few MB at most; the rest waited at the server.
    assert backlog
    assert backlog[0] > 16_000_000


# -- proxies ------------------------------------------------------------------------


def test_a_forward_proxy_is_sent_the_whole_url(mode: str, environment: pytest.MonkeyPatch) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY, b"connection: close\r\n"))

    with RawServer(handler) as server:
        environment.setenv("HTTP_PROXY", server.url("/"))
        assert ask(mode, "http://chat.example/free-chat") == ["Hello, world"]
    assert server.request_lines == [b"POST http://chat.example/free-chat HTTP/1.1"]


def test_no_proxy_goes_direct(mode: str, environment: pytest.MonkeyPatch) -> None:
    async def direct(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY))

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await proxy.read_request(reader)

    with RawServer(direct) as server, RawServer(refuse) as proxy:
        environment.setenv("HTTP_PROXY", proxy.url("/"))
        environment.setenv("NO_PROXY", "localhost,127.0.0.1")
        assert ask(mode, server.url()) == ["Hello, world"]
    assert proxy.request_lines == []
    assert server.request_lines == [b"POST /free-chat HTTP/1.1"]


def test_the_environment_is_read_when_a_client_is_made(environment: pytest.MonkeyPatch) -> None:
    with RawServer.answering(sized(BODY)) as server:
        environment.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        environment.setenv("NO_PROXY", "127.0.0.1")
        with chatwire.Client() as client:
            environment.delenv("NO_PROXY")  # too late for this client
            answer = client.create(
                messages=MESSAGES, provider="forefront", base_url=server.url(), max_retries=0
            )
        assert answer == "Hello, world"
        with chatwire.Client() as client, pytest.raises(chatwire.ProviderUnreachable):
            client.create(
                messages=MESSAGES, provider="forefront", base_url=server.url(), max_retries=0
            )


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def tls_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "tls.example").configure_cert(context)
    return context


def test_https_through_a_connect_proxy(
    mode: str, environment: pytest.MonkeyPatch, authority: trustme.CA
) -> None:
    tunnels: list[bytes] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(BODY, b"connection: close\r\n"))

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        tunnels.append(head.split(b"\r\n", 1)[0])
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    with (
        authority.cert_pem.tempfile() as ca_file,
        RawServer(origin, tls_context(authority)) as server,
        RawServer(tunnel) as proxy,
    ):
        environment.setenv("SSL_CERT_FILE", ca_file)
        environment.setenv("HTTPS_PROXY", proxy.url("/"))
        assert ask(mode, server.url(scheme="https")) == ["Hello, world"]
    assert tunnels == [b"CONNECT 127.0.0.1:%d HTTP/1.1" % server.port]
    assert server.request_lines == [b"POST /free-chat HTTP/1.1"]


# -- TLS ----------------------------------------------------------------------------


def test_https_with_a_private_ca_named_by_ssl_cert_file(
    mode: str, environment: pytest.MonkeyPatch, authority: trustme.CA
) -> None:
    with (
        authority.cert_pem.tempfile() as ca_file,
        RawServer.answering(sized(BODY), kept=False, ssl_context=tls_context(authority)) as server,
    ):
        environment.setenv("SSL_CERT_FILE", ca_file)
        assert ask(mode, server.url(scheme="https")) == ["Hello, world"]


def test_an_unknown_ca_is_refused_before_any_request(
    mode: str, environment: pytest.MonkeyPatch, authority: trustme.CA
) -> None:
    with (
        RawServer.answering(sized(BODY), kept=False, ssl_context=tls_context(authority)) as server,
        pytest.raises(chatwire.ProviderUnreachable, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        ask(mode, server.url(scheme="https"))
    assert server.request_lines == []


def test_the_default_calls_share_one_pool_per_mode(mode: str) -> None:
    def sync_twice(url: str) -> list[str]:
        return [
            chatwire.ChatCompletion.create(
                messages=MESSAGES, provider="forefront", base_url=url, max_retries=0
            )
            for _ in range(2)
        ]

    async def async_twice(url: str) -> list[str]:
        return [
            await chatwire.ChatCompletion.acreate(
                messages=MESSAGES, provider="forefront", base_url=url, max_retries=0
            )
            for _ in range(2)
        ]

    with RawServer.answering(sized(BODY)) as server:
        if mode == "sync":
            answers = sync_twice(server.url())
        else:
            answers = asyncio.run(async_twice(server.url()))
        assert answers == ["Hello, world"] * 2
        assert server.connections == 1


def test_a_caller_slow_between_reads_is_not_a_silent_server(mode: str) -> None:
    def lagging(url: str) -> str:
        with chatwire.Client() as client:
            stream = client.create(
                messages=MESSAGES, provider="forefront", base_url=url, stream=True,
                max_retries=0, read_timeout=0.2,
            )  # fmt: skip
            with stream:
                first = next(stream)
                time.sleep(0.6)  # longer than the read timeout, spent by the caller
                return first + "".join(stream)

    async def alagging(url: str) -> str:
        async with chatwire.Client() as client:
            stream = await client.acreate(
                messages=MESSAGES, provider="forefront", base_url=url, stream=True,
                max_retries=0, read_timeout=0.2,
            )  # fmt: skip
            async with stream:
                first = await anext(stream)
                await asyncio.sleep(0.6)
                return first + "".join([piece async for piece in stream])

    with RawServer.answering(sized(BODY), kept=False) as server:
        answer = lagging(server.url()) if mode == "sync" else asyncio.run(alagging(server.url()))
    assert answer == "Hello, world"


def test_a_body_held_open_after_the_answer_costs_the_connection() -> None:
    # Async only: httpx cannot say whether the body's end is buffered, so the sync
    # driver waits for it up to the read timeout.
    closed = threading.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + b"\r\n" + chunk(BODY + b"data: [DONE]\n\n"))
        await writer.drain()
        await reader.read()  # the body is never ended; b"" once the client gives up on it
        closed.set()

    async def async_answer(url: str) -> tuple[str, bool]:
        async with chatwire.Client() as client:
            text = await client.acreate(
                messages=MESSAGES, provider="forefront", base_url=url, max_retries=0
            )
            return text, await asyncio.to_thread(closed.wait, 60)

    with RawServer(handler) as server:
        outcome = asyncio.run(async_answer(server.url()))
    assert outcome == ("Hello, world", True)


def test_no_proxy_matches_default_ports_and_bracketed_addresses(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    environment.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    environment.setenv("NO_PROXY", "api.example.com:443,[::1]:8080,.corp.example")
    settings = Settings()
    assert settings.proxy_for("https://api.example.com/v1") is None
    assert settings.proxy_for("http://api.example.com/v1") == "http://proxy.invalid:3128"
    assert settings.proxy_for("http://[::1]:8080/") is None
    assert settings.proxy_for("http://[::1]:8081/") == "http://proxy.invalid:3128"
    assert settings.proxy_for("https://a.corp.example/") is None
    assert settings.proxy_for("https://corp.example.org/") == "http://proxy.invalid:3128"


def test_a_proxy_of_a_kind_not_served_is_a_clear_error(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(chatwire.InvalidRequest, match="ALL_PROXY: only http:// and https://"):
        chatwire.Client()


def test_cookies_an_upstream_sets_are_never_sent_back(mode: str) -> None:
    """A gateway shares its pools between users: a cookie kept for one would reach the next."""
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            heads.append((await server.read_request(reader)).lower())
            writer.write(sized(BODY, b"set-cookie: session=user-one; Path=/\r\n"))

    with RawServer(handler) as server:
        # By name: aiohttp's default jar keeps no cookies for a bare IP address.
        by_name = server.url().replace("127.0.0.1", "localhost")
        assert ask(mode, by_name, times=2) == ["Hello, world"] * 2
    assert len(heads) == 2
    assert b"cookie:" not in heads[1]


def test_the_gateway_closes_its_upstream_connections_when_it_stops() -> None:
    from chatwire.server import create_app

    from .servers import running

    closed = threading.Event()
    completion = (
        b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},'
        b' "finish_reason": "stop"}]}'
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(sized(completion))  # the connection is kept after this
        await reader.read()  # b"" once the gateway closes it
        closed.set()

    with RawServer(handler) as server:
        options = {"base_url": server.url("/v1"), "api_key": "x", "max_retries": 0}
        with running(create_app("openai", options=options)) as gateway:
            reply = httpx.post(
                gateway.url("/v1/chat/completions"),
                json={"model": "m", "messages": MESSAGES}, timeout=30,
            )  # fmt: skip
            assert reply.json()["choices"][0]["message"]["content"] == "Hello"
            assert not closed.is_set()  # kept for the next request while the gateway runs
        assert closed.wait(60)  # the gateway's shutdown closed its pool
    assert server.connections == 1
