"""The OpenAI-compatible provider against llama.cpp's own server and a faulty one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

import chatwire
from chatwire import InvalidRequest, ProviderHTTPError, StreamInterrupted
from chatwire.providers import local, openai
from tests.servers import ScriptedServer, ThreadedServer, free_port, refused_url

QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server, on loopback, on the same GGUF."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(local.default_model_path()), "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
            "--n_threads", str(len(os.sched_getaffinity(0))), "--verbose", "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                error = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"llama_cpp.server did not start: {error[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_streams_from_llama_cpp_server(llama_server: str) -> None:
    with chatwire.ChatCompletion.create(
        messages=QUESTION,
        provider="openai",
        model="smollm2",
        stream=True,
        base_url=llama_server,
        max_tokens=32,
        temperature=0,
        seed=1,
    ) as stream:
        pieces = list(stream)
    assert len(pieces) > 3
    assert len("".join(pieces).split()) >= 3
    assert stream.meta["finish_reason"] in ("stop", "length")


def test_whole_answer_and_usage_from_llama_cpp_server(llama_server: str) -> None:
    reply = openai._create_completion(
        "smollm2", QUESTION, False, base_url=llama_server, max_tokens=16, temperature=0
    )
    text = "".join(reply)
    assert len(text.split()) >= 3
    usage = reply.meta["usage"]
    assert usage["completion_tokens"] <= 16
    assert usage["prompt_tokens"] > 0


def test_async_from_llama_cpp_server(llama_server: str) -> None:
    import asyncio

    async def main() -> str:
        stream = await chatwire.ChatCompletion.acreate(
            messages=QUESTION, provider="openai", model="smollm2", stream=True,
            base_url=llama_server, max_tokens=16,
        )  # fmt: skip
        return "".join([piece async for piece in stream])

    assert asyncio.run(main()).strip()


def test_reads_usage_from_the_stream(server: ThreadedServer, server_app: ScriptedServer) -> None:
    server_app.pieces = ["Hello", ", ", "world"]
    server_app.requests.clear()
    with chatwire.ChatCompletion.create(
        messages=QUESTION,
        provider="openai",
        model="any-model",
        stream=True,
        base_url=server.url("/openai/v1"),
        api_key="k-123",
        temperature=0.5,
        stop="x",
    ) as stream:
        assert list(stream) == ["Hello", ", ", "world"]
    assert stream.meta == {
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }  # fmt: skip
    (request,) = server_app.requests
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k-123"
    assert request.json == {
        "model": "any-model", "messages": QUESTION, "stream": True,
        "stream_options": {"include_usage": True}, "temperature": 0.5, "stop": "x",
    }  # fmt: skip


def test_upstream_error_body_becomes_provider_http_error(server: ThreadedServer) -> None:
    with pytest.raises(ProviderHTTPError) as caught:
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="openai", model="m", base_url=server.url("/error-500")
        )
    assert caught.value.status_code == 500
    assert str(caught.value).endswith("HTTP 500: the model fell over")


def test_429_keeps_retry_after(server: ThreadedServer, retry_waits: list[float]) -> None:
    with pytest.raises(ProviderHTTPError) as caught:
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="openai", model="m", base_url=server.url("/rate-limited")
        )
    assert (caught.value.status_code, caught.value.retry_after) == (429, 7.0)
    assert retry_waits == [7.0, 7.0]


def test_wrong_protocol_is_a_protocol_error(server: ThreadedServer) -> None:
    # /free-chat speaks Forefront events, which carry no choices.
    with pytest.raises(chatwire.ProtocolError, match="neither choices nor usage"):
        list(
            chatwire.ChatCompletion.create(
                messages=QUESTION, provider="openai", model="m", stream=True,
                base_url=server.url("/free-chat"),
            )
        )  # fmt: skip


def test_drop_while_reading_a_whole_answer(server: ThreadedServer) -> None:
    with pytest.raises(StreamInterrupted, match="connection lost"):
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="openai", model="m", base_url=server.url("/drop")
        )


def test_error_event_mid_stream_is_an_interruption() -> None:
    with pytest.raises(StreamInterrupted, match="upstream error: overloaded"):
        openai.read_events(['{"error": {"message": "overloaded"}}'], {})


def test_an_error_beside_content_is_an_interruption_in_any_batch() -> None:
    both = '{"error": {"message": "boom"}, "choices": [{"delta": {"content": "x"}}]}'
    for batch in ([both], [both, "not JSON"]):
        with pytest.raises(StreamInterrupted, match="upstream error: boom"):
            openai.read_events(batch, {})


def test_a_batch_the_bulk_decoder_refuses_is_read_event_by_event() -> None:
    # NaN is JSON to Python's json module only, and a payload holding a top-level
    # comma would shift the batch: both go the general way and lose no text.
    plain = '{"choices": [{"delta": {"content": "a"}}]}'
    odd = '{"choices": [{"delta": {"content": "b"}}], "score": NaN}'
    assert openai.read_events([plain, odd, plain], {}) == ["a", "b", "a"]
    with pytest.raises(chatwire.ProtocolError):
        openai.read_events([plain, "1, 2"], {})


def test_missing_key_against_openai_is_rejected_before_io(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InvalidRequest, match="needs an API key"):
        chatwire.ChatCompletion.create(messages=QUESTION, provider="openai")


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("api_key", "sk-one\r\nX-Injected: yes", "api_key must be an API key"),
        ("api_key", "sk-caf\u00e9", "api_key must be an API key"),
        ("base_url", "http://127.0.0.1:9/v1 HTTP/1.0", "base_url must be an http"),
        ("OPENAI_API_KEY", "sk-one\nX-Injected: yes", "OPENAI_API_KEY must be printable ASCII"),
        ("OPENAI_BASE_URL", "localhost:8080/v1", "OPENAI_BASE_URL must be an http"),
    ],
)
def test_values_that_would_break_the_request_are_rejected_before_io(
    monkeypatch: pytest.MonkeyPatch, setting: str, value: str, says: str
) -> None:
    options = {"api_key": "k", "base_url": refused_url()}
    if setting.isupper():
        monkeypatch.setenv(setting, value)
        options.pop(setting.removeprefix("OPENAI_").lower())
    else:
        options[setting] = value
    with pytest.raises(InvalidRequest, match=says):
        chatwire.ChatCompletion.create(messages=QUESTION, provider="openai", model="m", **options)


def test_contract() -> None:
    assert openai.needs_auth is True
    assert openai.params == (
        "chatwire.providers.openai supports: (model: str, messages: list, stream: bool)"
    )
