"""Tool calls: forwarded with the request, streamed back in pieces, never lost."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import chatwire
from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import TOOL_CALLS, ScriptedServer, ThreadedServer, running

QUESTION = [{"role": "user", "content": "Weather and time in Paris?"}]
TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("get_weather", "get_time")
]


def ask(server: ThreadedServer, **options: Any) -> Any:
    fields = {"tools": TOOLS, "tool_choice": "auto", "parallel_tool_calls": True, **options}
    return chatwire.ChatCompletion.create(
        messages=QUESTION, provider="openai", model="m", base_url=server.url("/tool-calls/v1"),
        **fields,
    )  # fmt: skip


def test_a_stream_keeps_the_tool_calls_and_says_why_it_ended(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    stream = ask(server, stream=True)
    assert list(stream) == []  # no text: the answer is the calls
    assert stream.tool_calls == TOOL_CALLS
    assert stream.finish_reason == "tool_calls"
    sent = server_app.requests[-1].json
    assert (sent["tools"], sent["tool_choice"], sent["parallel_tool_calls"]) == (
        TOOLS,
        "auto",
        True,
    )


def test_a_whole_answer_carries_its_tool_calls(server: ThreadedServer) -> None:
    answer = ask(server)
    assert answer == ""
    assert answer.tool_calls == TOOL_CALLS
    assert answer.finish_reason == "tool_calls"

    async def main() -> Any:
        return await chatwire.ChatCompletion.acreate(
            messages=QUESTION, provider="openai", model="m",
            base_url=server.url("/tool-calls/v1"), tools=TOOLS, stream=True,
        )  # fmt: skip

    async def drain() -> Any:
        stream = await main()
        async with stream:
            assert [piece async for piece in stream] == []
        return stream

    assert asyncio.run(drain()).tool_calls == TOOL_CALLS


def test_bad_tools_are_refused_before_any_io(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    with pytest.raises(
        chatwire.InvalidRequest, match=r"^tools: provider 'forefront' cannot call tools"
    ):
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="forefront", base_url=server.url("/free-chat"),
            tools=TOOLS,
        )  # fmt: skip
    with pytest.raises(chatwire.InvalidRequest, match=r"tools\[0\]: object missing .* `function`"):
        ask(server, tools=[{"type": "function"}])
    assert server_app.requests == []


@pytest.fixture(scope="module")
def gateway(server: ThreadedServer) -> Iterator[ThreadedServer]:
    upstream = {"base_url": server.url("/tool-calls/v1"), "api_key": "x", "max_retries": 0}
    with running(create_app("openai", options=upstream)) as served:
        yield served


def test_the_gateway_streams_tool_calls_as_openai_chunks(gateway: ThreadedServer) -> None:
    client = openai.OpenAI(base_url=gateway.url("/v1"), api_key="-", max_retries=0)
    stream = client.chat.completions.create(
        model="m",
        messages=QUESTION,
        tools=TOOLS,
        stream=True,  # type: ignore[arg-type]
    )
    calls: list[dict[str, Any]] = []
    finish = None
    argument_pieces = 0
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            while len(calls) <= delta.index:
                calls.append({"id": "", "type": "function",
                              "function": {"name": "", "arguments": ""}})  # fmt: skip
            call = calls[delta.index]
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["function"]["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                call["function"]["arguments"] += delta.function.arguments
                argument_pieces += 1
    assert calls == TOOL_CALLS
    assert finish == "tool_calls"
    assert argument_pieces > len(TOOL_CALLS)  # relayed in pieces, as they came


def test_the_gateway_answers_tool_calls_whole(gateway: ThreadedServer) -> None:
    reply = httpx.post(
        gateway.url("/v1/chat/completions"), json={"messages": QUESTION, "tools": TOOLS}
    )
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == TOOL_CALLS


def test_langchain_bind_tools_gets_the_calls(gateway: ThreadedServer) -> None:
    class GetWeather(BaseModel):
        """The weather in a city."""

        city: str

    chat = ChatOpenAI(base_url=gateway.url("/v1"), api_key="-", model="m", max_retries=0)  # type: ignore[arg-type]
    reply = chat.bind_tools([GetWeather]).invoke("Weather in Paris?")
    assert [(call["name"], call["args"]) for call in reply.tool_calls] == [
        (call["function"]["name"], json.loads(call["function"]["arguments"])) for call in TOOL_CALLS
    ]


CITIES = ("Paris", "Rome", "Oslo")
LOCAL_TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "required": ["city"],
                       "properties": {"city": {"type": "string", "enum": list(CITIES)}}}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "The time in a time zone",
        "parameters": {"type": "object", "required": ["zone"],
                       "properties": {"zone": {"type": "string", "maxLength": 24}}}}},
]  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_the_embedded_model_calls_a_tool_when_one_is_required(seed: int) -> None:
    # Sampled: whatever the model picks, the grammar makes it a call that fits.
    answer = chatwire.ChatCompletion.create(
        messages=QUESTION, tools=LOCAL_TOOLS, tool_choice="required", temperature=1.0, seed=seed
    )
    (call,) = answer.tool_calls
    assert answer == ""
    assert answer.finish_reason == "tool_calls"
    arguments = json.loads(call["function"]["arguments"])
    if call["function"]["name"] == "get_weather":
        assert arguments["city"] in CITIES
    else:
        assert call["function"]["name"] == "get_time"
        assert isinstance(arguments["zone"], str)
    named = chatwire.ChatCompletion.create(
        messages=QUESTION, tools=LOCAL_TOOLS, stream=True, seed=seed,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    assert list(named) == []
    assert [call["function"]["name"] for call in named.tool_calls] == ["get_time"]


@pytest.mark.parametrize(
    ("tool_choice", "says"),
    [
        ("auto", "calls a tool only when tool_choice requires one"),
        ({"type": "function", "function": {"name": "nope"}}, "names 'nope', which is not in"),
    ],
)
def test_the_embedded_model_refuses_to_guess(tool_choice: Any, says: str) -> None:
    with pytest.raises(chatwire.InvalidRequest, match=says):
        chatwire.ChatCompletion.create(
            messages=QUESTION, tools=LOCAL_TOOLS, tool_choice=tool_choice
        )


def test_the_openai_sdk_gets_a_required_call_from_the_embedded_model(
    local_gateway: ThreadedServer,
) -> None:
    client = openai.OpenAI(base_url=local_gateway.url("/v1"), api_key="-", max_retries=0)
    whole = client.chat.completions.create(
        model="local", messages=QUESTION, tools=LOCAL_TOOLS, tool_choice="required",  # type: ignore[arg-type]
    )  # fmt: skip
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls
    assert choice.message.tool_calls[0].function.name in ("get_weather", "get_time")
    refused = httpx.post(
        local_gateway.url("/v1/chat/completions"), json={"messages": QUESTION, "tools": TOOLS}
    )
    assert refused.status_code == 400
    assert "calls a tool only when tool_choice requires one" in refused.text


def test_langchain_bind_tools_with_the_embedded_model(local_gateway: ThreadedServer) -> None:
    class GetWeather(BaseModel):
        """The weather in a city."""

        city: str

    chat = ChatOpenAI(base_url=local_gateway.url("/v1"), api_key="-", model="local",  # type: ignore[arg-type]
                      max_retries=0)  # fmt: skip
    reply = chat.bind_tools([GetWeather], tool_choice="required").invoke("Weather in Paris?")
    ((name, args),) = [(call["name"], call["args"]) for call in reply.tool_calls]
    assert name == "GetWeather"
    assert isinstance(args["city"], str)


def test_the_log_keeps_tool_calls_and_the_next_turn_sends_them(
    server: ThreadedServer, server_app: ScriptedServer, tmp_path: Path
) -> None:
    store = Store(tmp_path / "log.db")
    for stream in (True, False):
        answer = ask(server, stream=stream, store=store, conversation_id=f"c{stream}")
        if stream:
            assert list(answer) == []
        (logged,) = store.conversation(f"c{stream}")
        assert logged.tool_calls == TOOL_CALLS
        assert logged.status == "complete"
        history = store.history(f"c{stream}")
        assert history[-1] == {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS}
    # The logged history is a valid next request: the calls go upstream again.
    results = [
        {"role": "tool", "tool_call_id": call["id"], "content": "fine"} for call in TOOL_CALLS
    ]
    chatwire.ChatCompletion.create(
        messages=[*store.history("cTrue"), *results], provider="openai", model="m",
        base_url=server.url("/compatible/v1"),
    )  # fmt: skip
    assert server_app.requests[-1].json["messages"][1]["tool_calls"] == TOOL_CALLS


def test_chatwire_logs_shows_the_tool_calls(server: ThreadedServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store(home / "logs.db")
    ask(server, store=store)
    assert store.flush(60)  # another process reads the log: the records must be in it
    shown = subprocess.run(
        [shutil.which("chatwire") or "chatwire", "logs"], capture_output=True, text=True,
        check=True, env={**os.environ, "CHATWIRE_HOME": str(home)}, timeout=60,
    )  # fmt: skip
    for call in TOOL_CALLS:
        name, arguments = call["function"]["name"], call["function"]["arguments"]
        assert f"[tool call {name}({arguments})]" in shown.stdout
