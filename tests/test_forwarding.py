"""The openai provider sends the upstream what its caller wrote (Hypothesis-generated requests)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chatwire
from chatwire.server import create_app
from tests.servers import ScriptedServer, ThreadedServer, running

_text = st.text(max_size=12)
_part = st.fixed_dictionaries({"type": st.just("text"), "text": _text}) | st.fixed_dictionaries(
    {
        "type": st.just("image_url"),
        "image_url": st.fixed_dictionaries(
            {"url": _text}, optional={"detail": st.sampled_from(["auto", "low", "high"])}
        ),
    }
)
_content = _text | st.lists(_part, min_size=1, max_size=3)
_call = st.fixed_dictionaries(
    {
        "id": _text,
        "type": st.just("function"),
        "function": st.fixed_dictionaries({"name": _text, "arguments": _text}),
    }
)
_message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "assistant"]),
         "content": _content},
        optional={"name": _text},
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": st.none(),
         "tool_calls": st.lists(_call, min_size=1, max_size=2)}
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "content": _content,
         "tool_call_id": st.text(min_size=1, max_size=8)}
    ),
)  # fmt: skip
_schema = st.fixed_dictionaries(
    {"name": st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True)},
    optional={"schema": st.just({"type": "object"}), "strict": st.booleans()},
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2),
        "top_p": st.floats(0, 1),
        "max_tokens": st.integers(1, 10_000),
        "max_completion_tokens": st.integers(1, 10_000),
        "seed": st.integers(-(2**31), 2**31),
        "stop": st.lists(_text, max_size=4),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "user": _text,
        "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}])
        | st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": _schema}),
    },
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(_message, min_size=1, max_size=5), fields=_fields)
def test_the_upstream_receives_the_request_as_written(
    server: ThreadedServer,
    server_app: ScriptedServer,
    messages: list[dict[str, Any]],
    fields: dict[str, Any],
) -> None:
    answer = chatwire.ChatCompletion.create(
        messages=messages, provider="openai", model="some-model",
        base_url=server.url("/compatible/v1"), **fields,
    )  # fmt: skip
    assert answer == "".join(server_app.pieces)
    sent = server_app.requests[-1].json
    assert sent["model"] == "some-model"
    assert sent["messages"] == messages
    assert {name: sent[name] for name in fields} == fields
    assert set(sent) == {"model", "messages", "stream", *fields}


@pytest.mark.parametrize("max_tokens", [5, 5.0])  # 5.0 is read the slow way
def test_through_the_gateway_the_upstream_receives_the_body_as_written(
    server: ThreadedServer, server_app: ScriptedServer, max_tokens: float
) -> None:
    upstream = {"base_url": server.url("/compatible/v1"), "api_key": "x", "max_retries": 0}
    body = {
        "model": "openai/some-model",
        "messages": [
            {"role": "system", "content": "Be brief.", "x-note": {"kept": True}},
            {"role": "user", "content": [
                {"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}},
            ]},
        ],
        "temperature": 0.25,
        "max_tokens": max_tokens,
        "reasoning_effort": "low",
        "metadata": {"team": "docs"},
    }  # fmt: skip
    with running(create_app("openai", options=upstream)) as gateway:
        reply = httpx.post(gateway.url("/v1/chat/completions"), json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    sent = server_app.requests[-1].json
    # Extensions inside messages and fields chatwire does not know go on untouched;
    # the model is the upstream's name for it.
    assert sent == {**body, "model": "some-model", "stream": False}
