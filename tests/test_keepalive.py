"""Requests in a row to one server share one connection, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import chatwire
from tests.servers import ScriptedServer, ThreadedServer

USER = [{"role": "user", "content": "hi"}]
# Forefront streams end with the body; OpenAI streams end at [DONE], before it.
ENDPOINTS = {
    "forefront": {"provider": "forefront", "path": "/free-chat"},
    "openai": {"provider": "openai", "path": "/openai/v1", "model": "m"},
}


def ask_five_sync(url: str, provider: str, **options: Any) -> list[str]:
    answers = []
    for _ in range(5):
        stream = chatwire.ChatCompletion.create(
            messages=USER, provider=provider, base_url=url, stream=True, **options
        )
        answers.append("".join(stream))
    return answers


def ask_five_async(url: str, provider: str, **options: Any) -> list[str]:
    async def main() -> list[str]:
        answers = []
        for _ in range(5):
            stream = await chatwire.ChatCompletion.acreate(
                messages=USER, provider=provider, base_url=url, stream=True, **options
            )
            answers.append("".join([piece async for piece in stream]))
        return answers

    return asyncio.run(main())


@pytest.mark.parametrize("ask_five", [ask_five_sync, ask_five_async], ids=["sync", "async"])
@pytest.mark.parametrize("endpoint", ENDPOINTS.values(), ids=ENDPOINTS.keys())
def test_five_requests_in_a_row_use_one_connection(
    ask_five: Any, endpoint: dict[str, str], server: ThreadedServer, server_app: ScriptedServer
) -> None:
    options = {key: value for key, value in endpoint.items() if key != "path"}
    answers = ask_five(server.url(endpoint["path"]), **options)
    assert answers == ["Hello, world!"] * 5
    assert len(server_app.requests) == 5
    connections = {request.client for request in server_app.requests}
    assert len(connections) == 1
