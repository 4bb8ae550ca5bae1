"""The gateway, driven by real clients: the official openai SDK, chatwire's own
providers, and raw HTTP for the error cases."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import httpx
import openai
import pytest

import chatwire
from chatwire.providers import local
from chatwire.server import create_app
from tests.servers import ScriptedServer, ThreadedServer, running, wait_until

QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]
GREEDY = {"temperature": 0, "seed": 7, "max_tokens": 24}


@pytest.fixture(scope="module")
def gateway() -> Iterator[ThreadedServer]:
    with running(create_app("local")) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_gateway() -> Iterator[ThreadedServer]:
    with running(create_app("local", api_key="sekrit", max_body=4096)) as server:
        yield server


def sdk(server: ThreadedServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url("/v1"), api_key=key, max_retries=0)


# -- the openai SDK as a client ------------------------------------------------


def test_openai_sdk_whole_answer(gateway: ThreadedServer) -> None:
    reply = sdk(gateway).chat.completions.create(
        model="local/smollm2-135m-instruct",
        messages=QUESTION,
        **GREEDY,  # type: ignore[arg-type]
    )
    expected = chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0
    assert reply.usage.prompt_tokens > 0


def test_openai_sdk_streams(gateway: ThreadedServer) -> None:
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="smollm2-135m-instruct", messages=QUESTION, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}, **GREEDY,
        )
    )  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len([f for f in finishes if f is None]) - 1


def test_openai_sdk_async(gateway: ThreadedServer) -> None:
    async def main() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=gateway.url("/v1"), api_key="x", max_retries=0)
        whole = await client.chat.completions.create(
            model="local",
            messages=QUESTION,
            **GREEDY,  # type: ignore[arg-type]
        )
        stream = await client.chat.completions.create(
            model="local",
            messages=QUESTION,
            stream=True,
            **GREEDY,  # type: ignore[arg-type]
        )
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return whole.choices[0].message.content or "", "".join(pieces)

    whole, streamed = asyncio.run(main())
    assert whole == streamed == chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)


def test_models_and_health(gateway: ThreadedServer) -> None:
    models = sdk(gateway).models.list()
    assert [m.id for m in models.data] == ["local/smollm2-135m-instruct"]
    assert httpx.get(gateway.url("/healthz")).json() == {"status": "ok", "log": None}


# -- the Forefront protocol, round trip through a real model -----------------------


def test_forefront_provider_through_free_chat(gateway: ThreadedServer) -> None:
    # /free-chat answers with the server's default sampling; compare against the same.
    pieces = list(
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="forefront", stream=True, base_url=gateway.url("/free-chat")
        )
    )
    assert len(pieces) > 3
    assert "".join(pieces).strip()


def test_openai_provider_against_the_gateway(gateway: ThreadedServer) -> None:
    options = {"base_url": gateway.url("/v1"), **GREEDY}
    with chatwire.ChatCompletion.create(
        messages=QUESTION, provider="openai", model="local", stream=True, **options
    ) as stream:
        text = "".join(stream)
    assert text == chatwire.ChatCompletion.create(messages=QUESTION, **GREEDY)
    assert stream.meta["usage"]["completion_tokens"] > 0
    assert (
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="openai", model="local", **options
        )
        == text
    )


# -- security and bad input ------------------------------------------------------------


def test_api_key_is_required_everywhere_but_healthz(keyed_gateway: ThreadedServer) -> None:
    body = {"messages": QUESTION, "max_tokens": 2}
    for method, path in [("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
                         ("POST", "/free-chat")]:  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"}):
            reply = httpx.request(method, keyed_gateway.url(path), json=body, headers=headers)
            assert reply.status_code == 401, (path, headers)
            assert reply.json()["error"]["type"] == "authentication_error"
    assert httpx.get(keyed_gateway.url("/healthz")).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        sdk(keyed_gateway, key="wrong").models.list()
    assert sdk(keyed_gateway, key="sekrit").models.list().data


def post(server: ThreadedServer, content: bytes | str, key: str = "sekrit") -> httpx.Response:
    return httpx.post(
        server.url("/v1/chat/completions"),
        content=content,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("body", "status", "param", "message"),
    [
        ("{not json", 400, None, "not valid JSON"),
        ("[1, 2]", 400, None, "must be a JSON object"),
        ("{}", 400, "messages", "messages: this field is required"),
        ('{"messages": []}', 400, "messages", "messages: expected `array` of length >= 1"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', 400, "messages", r"messages[0].role"),
        ('{"messages": [{"role": "user", "content": 1}]}', 400, "messages", "messages[0].content"),
        ('{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
         "temperature", "temperature: expected `float | null`, got `str`"),
        ('{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream",
         "stream: expected `bool | null`, got `str`"),
        ('{"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}',
         400, "stop", "stop: expected `array` of length <= 4"),
        ('{"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage":'
         ' 1}}', 400, "stream_options", "stream_options.include_usage: expected `bool | null`"),
        ('{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', 400, "temperature",
         "temperature: provider 'local' takes a number from 0 to 5"),
        ('{"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}', 404, "model",
         "model 'gpt-9' does not exist"),
    ],
)  # fmt: skip
def test_bad_requests_get_openai_error_bodies(
    keyed_gateway: ThreadedServer, body: str, status: int, param: str | None, message: str
) -> None:
    reply = post(keyed_gateway, body)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert message in error["message"]
    assert error["param"] == param
    assert "Traceback" not in reply.text


def test_a_prompt_over_the_context_is_400_context_length_exceeded(
    gateway: ThreadedServer,
) -> None:
    long = [{"role": "user", "content": "word " * 5000}]
    for stream in (False, True):
        reply = httpx.post(
            gateway.url("/v1/chat/completions"), json={"messages": long, "stream": stream}
        )
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
        assert "context limit of 2048 tokens" in error["message"]
    assert gateway.app.state.gateway.active == 0


def test_body_over_the_limit_is_413(keyed_gateway: ThreadedServer) -> None:
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]})
    reply = post(keyed_gateway, big)
    assert reply.status_code == 413
    assert "larger than 4096 bytes" in reply.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield big.encode()

    reply = httpx.post(
        keyed_gateway.url("/v1/chat/completions"),
        content=chunked(),
        headers={"Authorization": "Bearer sekrit"},
    )
    assert reply.status_code == 413


def test_upstream_failure_before_the_first_token_is_502(server: ThreadedServer) -> None:
    app = create_app("forefront", options={"base_url": server.url("/error-500")})
    with running(app) as gateway:
        reply = httpx.post(gateway.url("/v1/chat/completions"), json={"messages": QUESTION})
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["type"] == "upstream_error"
    assert "the model fell over" in error["message"]


def test_failure_mid_stream_is_an_error_event(server: ThreadedServer) -> None:
    app = create_app("forefront", options={"base_url": server.url("/drop")})
    with running(app) as gateway:
        reply = httpx.post(
            gateway.url("/v1/chat/completions"), json={"messages": QUESTION, "stream": True}
        )
        assert reply.status_code == 200
        events = [line[6:] for line in reply.text.split("\n\n") if line.startswith("data: ")]
        contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:-1]]
        assert contents == ["partial ", "answer"]
        assert "connection lost" in json.loads(events[-1])["error"]["message"]
        assert "[DONE]" not in reply.text
        # chatwire's own openai provider turns that into an error that keeps the text.
        with pytest.raises(chatwire.StreamInterrupted) as caught:
            list(
                chatwire.ChatCompletion.create(
                    messages=QUESTION, provider="openai", model="forefront", stream=True,
                    base_url=gateway.url("/v1"),
                )
            )  # fmt: skip
        assert caught.value.partial == "partial answer"  # fmt: skip


# -- disconnects stop the work behind them ----------------------------------------------


def test_client_disconnect_closes_the_upstream_connection(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    assert server.wait_for_connections(0) == 0
    disconnects = server_app.disconnects
    app = create_app("forefront", options={"base_url": server.url("/endless")})
    with running(app) as gateway:
        body = {"messages": QUESTION, "stream": True}
        with httpx.stream("POST", gateway.url("/v1/chat/completions"), json=body) as reply:
            lines = reply.iter_lines()
            assert next(lines).startswith("data: ")
            assert next(lines) == ""
            assert next(lines).startswith("data: ")
            assert server.open_connections == 1
        # The client is gone: the gateway must drop its upstream connection.
        assert server.wait_for_connections(0) == 0
    assert server_app.disconnects == disconnects + 1


@pytest.mark.parametrize(
    ("path", "stream"), [("/stall-headers", True), ("/stall-headers", False), ("/endless", False)]
)
def test_a_client_that_leaves_early_stops_the_upstream_request(
    server: ThreadedServer, server_app: ScriptedServer, path: str, stream: bool
) -> None:
    # Before the first token, or during a non-streamed answer, nothing is being
    # written to the client; its leaving must still end the upstream request.
    disconnects = server_app.disconnects
    app = create_app("forefront", options={"base_url": server.url(path), "read_timeout": 600})
    with running(app) as gateway:
        body = json.dumps({"messages": QUESTION, "stream": stream}).encode()
        with socket.create_connection(("127.0.0.1", gateway.port)) as client:
            client.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            assert server.wait_for_connections(1) == 1
        assert wait_until(lambda: server_app.disconnects == disconnects + 1)
        assert server.wait_for_connections(0) == 0
        assert gateway.app.state.gateway.active == 0  # its place is given back


def test_client_disconnect_stops_local_generation(gateway: ThreadedServer) -> None:
    # Greedy counting runs to max_tokens unless something stops it.
    counting = [{"role": "user", "content": "Count from 1 to 500, separated by commas."}]
    body = {"messages": counting, "stream": True, "max_tokens": 400, "temperature": 0}
    before = local.tokens_generated()
    with httpx.stream("POST", gateway.url("/v1/chat/completions"), json=body) as reply:
        for count, _ in enumerate(reply.iter_lines()):
            if count == 6:
                break
    assert wait_until(lambda: local.generations_running() == 0)
    # Stopped soon after the client left, far short of the 400 tokens asked for.
    assert local.tokens_generated() - before < 200


# -- fallback and load limits ------------------------------------------------------------


def test_gateway_falls_back_across_its_providers(
    server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import refused_url

    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", refused_url())
    monkeypatch.setenv("OPENAI_BASE_URL", server.url("/openai/v1"))
    with running(create_app("forefront,openai", options={"max_retries": "0"})) as gateway:
        reply = httpx.post(
            gateway.url("/v1/chat/completions"), json={"messages": QUESTION, "stream": True}
        )
        # Named explicitly, a provider is used alone: no fallback, a 502.
        named = httpx.post(
            gateway.url("/v1/chat/completions"), json={"messages": QUESTION, "model": "forefront"}
        )
    assert reply.status_code == 200
    events = [
        json.loads(line[len("data: ") :])
        for line in reply.text.splitlines()
        if line.startswith("data: {")
    ]
    assert {event["model"] for event in events} == {"openai/gpt-4o-mini"}
    assert "Hello" in "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert named.status_code == 502


def test_all_providers_failing_is_a_502_naming_each(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.servers import refused_url

    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", refused_url())
    monkeypatch.setenv("OPENAI_BASE_URL", refused_url())
    with running(create_app("forefront,openai", options={"max_retries": "0"})) as gateway:
        chat = httpx.post(gateway.url("/v1/chat/completions"), json={"messages": QUESTION})
        free = httpx.post(gateway.url("/free-chat"), json={"text": "hi"})
    for reply in (chat, free):
        assert reply.status_code == 502
        error = reply.json()["error"]
        assert error["code"] == "upstream_failed"
        assert "forefront" in error["message"]
        assert "openai" in error["message"]
        assert "cannot connect" in error["message"]


def test_requests_beyond_the_limit_get_429_at_once(server: ThreadedServer) -> None:
    app = create_app("forefront", max_concurrent=2, options={"base_url": server.url("/endless")})
    body = {"messages": QUESTION, "stream": True}
    with running(app) as gateway, httpx.Client(timeout=30) as client:
        url = gateway.url("/v1/chat/completions")
        with (
            client.stream("POST", url, json=body) as one,
            client.stream("POST", url, json=body) as two,
        ):
            assert (one.status_code, two.status_code) == (200, 200)
            refused = httpx.post(url, json=body)
            assert refused.status_code == 429
            assert refused.json()["error"]["type"] == "rate_limit_error"
        # Both streams are gone: their places are free again.
        for _ in range(500):
            if gateway.wait_for_connections(0, within=0.01) == 0:
                break
        with client.stream("POST", url, json=body) as again:
            assert again.status_code == 200
