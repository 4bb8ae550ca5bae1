"""Every error of the tree, raised by a real server misbehaving on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import chatwire
from chatwire import (
    ChatwireError,
    InvalidRequest,
    ProtocolError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
    StreamInterrupted,
)
from tests.servers import ScriptedServer, ThreadedServer, refused_url

USER = [{"role": "user", "content": "hi"}]


def collect_sync(url: str, **options: Any) -> list[str]:
    pieces: list[str] = []
    # No retries: each test here is about the error itself (retries: test_fallback.py).
    stream = chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", stream=True, base_url=url, max_retries=0, **options
    )
    for piece in stream:
        pieces.append(piece)
    return pieces


def collect_async(url: str, **options: Any) -> list[str]:
    async def main() -> list[str]:
        stream = await chatwire.ChatCompletion.acreate(
            messages=USER, provider="forefront", stream=True, base_url=url, max_retries=0,
            **options,
        )  # fmt: skip
        return [piece async for piece in stream]

    return asyncio.run(main())


both_apis = pytest.mark.parametrize("collect", [collect_sync, collect_async], ids=["sync", "async"])
Collect = Callable[..., list[str]]


def test_the_tree() -> None:
    for error in (ProviderUnreachable, ProviderTimeout, ProviderHTTPError, ProtocolError):
        assert issubclass(error, ProviderError)
    assert issubclass(StreamInterrupted, ProviderError)
    assert issubclass(ProviderError, ChatwireError)
    assert issubclass(InvalidRequest, ChatwireError)
    assert issubclass(InvalidRequest, ValueError)


@both_apis
def test_refused_port_is_unreachable(collect: Collect) -> None:
    url = refused_url()
    with pytest.raises(ProviderUnreachable) as caught:
        collect(url)
    assert caught.value.provider == "forefront"
    assert caught.value.url == url
    assert url in str(caught.value)


@both_apis
def test_http_500_carries_status_and_body(collect: Collect, server: ThreadedServer) -> None:
    with pytest.raises(ProviderHTTPError) as caught:
        collect(server.url("/error-500"))
    error = caught.value
    assert error.status_code == 500
    assert "the model fell over" in error.body
    assert "HTTP 500: the model fell over" in str(error)
    assert error.url == server.url("/error-500")


def test_http_429_keeps_retry_after(server: ThreadedServer) -> None:
    with pytest.raises(ProviderHTTPError) as caught:
        collect_sync(server.url("/rate-limited"))
    assert (caught.value.status_code, caught.value.retry_after) == (429, 7.0)


@contextlib.contextmanager
def full_backlog() -> Iterator[str]:
    """A loopback listener whose accept queue is full: new connections hang in SYN-SENT."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        waiting: list[socket.socket] = []
        try:
            while True:  # fill the queue until a handshake no longer completes
                filler = socket.socket()
                waiting.append(filler)
                filler.settimeout(1.0)
                try:
                    filler.connect(address)
                except TimeoutError:
                    break
            yield f"http://127.0.0.1:{address[1]}/free-chat"
        finally:
            for filler in waiting:
                filler.close()


@both_apis
@pytest.mark.parametrize("option", ["connect_timeout", "timeout"])
def test_a_server_that_cannot_take_the_connection_is_a_connect_timeout(
    collect: Collect, option: str
) -> None:
    with full_backlog() as url, pytest.raises(ProviderTimeout) as caught:
        collect(url, **{option: 0.3})
    assert "could not connect within 0.3s" in str(caught.value)
    assert caught.value.partial == ""


@both_apis
def test_server_that_never_answers_times_out(collect: Collect, server: ThreadedServer) -> None:
    with pytest.raises(ProviderTimeout, match=r"read timeout of 0\.3s"):
        collect(server.url("/stall-headers"), read_timeout=0.3)


@both_apis
def test_stall_after_some_text_keeps_the_text(collect: Collect, server: ThreadedServer) -> None:
    with pytest.raises(StreamInterrupted) as caught:
        collect(server.url("/stall-body"), read_timeout=0.3)
    assert caught.value.partial == "first words"


@both_apis
def test_drop_mid_stream_keeps_the_text(collect: Collect, server: ThreadedServer) -> None:
    with pytest.raises(StreamInterrupted) as caught:
        collect(server.url("/drop"))
    assert caught.value.partial == "partial answer"
    assert caught.value.provider == "forefront"


@both_apis
def test_garbage_line_is_a_protocol_error(collect: Collect, server: ThreadedServer) -> None:
    with pytest.raises(ProtocolError) as caught:
        collect(server.url("/garbage"))
    assert "{this is not json" in caught.value.line
    assert caught.value.partial == "fine "
    assert caught.value.url == server.url("/garbage")


@both_apis
def test_trickling_bytes_cannot_hold_the_caller(collect: Collect, server: ThreadedServer) -> None:
    # Bytes arrive every 50 ms, so the socket never goes quiet for 0.5 s, and
    # the server goes on until the client leaves; only a timeout on complete
    # lines can end the wait.
    with pytest.raises(ProviderTimeout, match=r"read timeout of 0\.5s"):
        collect(server.url("/trickle"), read_timeout=0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages": []}, "messages: expected `array` of length >= 1"),
        ({"messages": "hello"}, "messages: expected `array`"),
        ({"messages": None}, "messages: expected `array`"),
        ({"messages": [USER[0], "hi"]}, r"messages\[1\]: expected `object`, got `str`"),
        ({"messages": [{"role": "bot", "content": "x"}]}, r"messages\[0\]\.role: invalid enum"),
        ({"messages": [{"content": "x"}]}, r"messages\[0\]: object missing .* `role`"),
        ({"messages": [USER[0], {"role": "user", "content": 5}]}, r"messages\[1\]\.content: "),
        ({"messages": [{"role": "user"}]}, r"messages\[0\]: `content` is required"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}],
                    }
                ]
            },
            r"messages\[0\]\.content\[0\]: provider 'forefront' cannot "
            "read images",
        ),
        (
            {"messages": [{"role": "tool", "tool_call_id": "c", "content": "1"}]},
            r"messages\[0\]\.role: provider 'forefront' cannot call tools",
        ),
        ({"messages": USER, "provider": "nosuch"}, "unknown provider 'nosuch'"),
        ({"messages": USER, "provider": 42}, "provider must be a provider, a provider"),
        ({"messages": USER, "model": "gpt-9"}, "does not offer model 'gpt-9'"),
        ({"messages": USER, "max_tokens": 5}, "max_tokens: provider 'forefront' cannot serve it"),
        ({"messages": USER, "read_timeout": "soon"}, "read_timeout must be a number"),
        ({"messages": USER, "read_timeout": -1}, "read_timeout must be at least"),
        ({"messages": USER, "base_url": "ftp://x"}, "base_url must be an http"),
    ],
)
def test_bad_input_is_rejected_before_any_io(
    server: ThreadedServer, server_app: ScriptedServer, kwargs: dict[str, Any], message: str
) -> None:
    server_app.requests.clear()
    kwargs = {"provider": "forefront", "base_url": server.url("/free-chat"), **kwargs}
    with pytest.raises(InvalidRequest, match=message):
        chatwire.ChatCompletion.create(**kwargs)
    with pytest.raises(InvalidRequest, match=message):
        asyncio.run(chatwire.ChatCompletion.acreate(**kwargs))
    if kwargs["provider"] == "forefront":
        with pytest.raises(InvalidRequest, match=message):
            chatwire.providers.forefront._create_completion(
                kwargs.get("model", "gpt-3.5-turbo"), kwargs["messages"], True,
                **{k: v for k, v in kwargs.items() if k not in ("provider", "model", "messages")},
            )  # fmt: skip
    assert server_app.requests == []


def test_a_module_that_is_not_a_provider_is_rejected() -> None:
    import json

    with pytest.raises(InvalidRequest, match="not a chatwire provider"):
        chatwire.ChatCompletion.create(messages=USER, provider=json)


@both_apis
def test_text_in_the_same_chunk_as_a_fault_is_kept(
    collect: Collect, server: ThreadedServer
) -> None:
    with pytest.raises(ProtocolError) as caught:
        collect(server.url("/garbage-together"))
    assert caught.value.partial == "one two "
