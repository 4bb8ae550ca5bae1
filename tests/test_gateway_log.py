"""The gateway writes the conversation log and serves it read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import ThreadedServer, running

QUESTION = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def logged_gateway(
    tmp_path: Path, server: ThreadedServer
) -> Iterator[tuple[ThreadedServer, Store]]:
    store = Store(tmp_path / "gateway.db")
    app = create_app(
        "forefront", api_key="k", store=store, options={"base_url": server.url("/free-chat")}
    )
    with running(app) as gateway:
        yield gateway, store


def test_exchanges_are_logged_under_their_conversation(
    logged_gateway: tuple[ThreadedServer, Store],
) -> None:
    gateway, store = logged_gateway
    client = openai.OpenAI(
        base_url=gateway.url("/v1"), api_key="k", max_retries=0,
        default_headers={"X-Chatwire-Conversation": "conv-7"},
    )  # fmt: skip
    whole = client.chat.completions.create(model="forefront", messages=QUESTION)  # type: ignore[arg-type]
    streamed = client.chat.completions.with_raw_response.create(
        model="forefront",
        messages=QUESTION,
        stream=True,  # type: ignore[arg-type]
    )
    assert streamed.headers["x-chatwire-conversation"] == "conv-7"
    assert "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices) == (
        whole.choices[0].message.content
    )
    exchanges = store.conversation("conv-7")
    assert [(e.status, e.response) for e in exchanges] == [("complete", "Hello, world!")] * 2

    auth = {"Authorization": "Bearer k"}
    listing = httpx.get(gateway.url("/v1/conversations"), headers=auth).json()["data"]
    assert [(c["id"], c["title"], c["exchanges"]) for c in listing] == [
        ("conv-7", "hello there", 2)
    ]
    detail = httpx.get(gateway.url("/v1/conversations/conv-7"), headers=auth).json()
    assert [e["response"] for e in detail["exchanges"]] == ["Hello, world!"] * 2
    assert httpx.get(gateway.url("/v1/conversations/nope"), headers=auth).status_code == 404


def test_new_conversations_get_an_id(logged_gateway: tuple[ThreadedServer, Store]) -> None:
    gateway, store = logged_gateway
    reply = httpx.post(
        gateway.url("/v1/chat/completions"), json={"messages": QUESTION},
        headers={"Authorization": "Bearer k"},
    )  # fmt: skip
    cid = reply.headers["x-chatwire-conversation"]
    assert [e.response for e in store.conversation(cid)] == ["Hello, world!"]
    bad = httpx.post(
        gateway.url("/v1/chat/completions"), json={"messages": QUESTION},
        headers={"Authorization": "Bearer k", "X-Chatwire-Conversation": "../../etc"},
    )  # fmt: skip
    assert bad.status_code == 400


def test_the_log_is_behind_the_key(logged_gateway: tuple[ThreadedServer, Store]) -> None:
    gateway, _ = logged_gateway
    assert httpx.get(gateway.url("/v1/conversations")).status_code == 401
    assert httpx.get(gateway.url("/v1/conversations/x")).status_code == 401
    assert httpx.get(gateway.url("/")).status_code == 200  # the page itself is public


def test_a_disconnected_client_is_logged_as_interrupted(
    tmp_path: Path, server: ThreadedServer
) -> None:
    store = Store(tmp_path / "cut.db")
    app = create_app("forefront", store=store, options={"base_url": server.url("/endless")})
    with running(app) as gateway:
        body = {"messages": QUESTION, "stream": True}
        with httpx.stream("POST", gateway.url("/v1/chat/completions"), json=body) as reply:
            lines = reply.iter_lines()
            for _ in range(6):
                next(lines)
        for _ in range(500):
            if store.recent():
                break
            server.wait_for_connections(0, within=0.01)
    (exchange,) = store.recent()
    assert exchange.status == "interrupted"
    assert exchange.response.startswith("t0 ")


def test_without_a_store_the_log_routes_say_so(server: ThreadedServer) -> None:
    with running(create_app("forefront")) as gateway:
        reply = httpx.get(gateway.url("/v1/conversations"))
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "log_disabled"
