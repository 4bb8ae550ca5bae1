"""The typed chat request: what it accepts, what it refuses, and how it says so."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatwire import InvalidRequest
from chatwire._models import (
    ChatRequest,
    ImagePart,
    JsonSchemaFormat,
    NamedToolChoice,
    TextPart,
    decode_request,
    request_from,
)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
# What today's clients send: parts, developer, a finished tool call and its result.
TODAY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "developer", "content": "Answer briefly."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris? And what is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, cloudy"},
        {"role": "user", "content": "Thanks.", "name": "ann"},
    ],
    "tools": [WEATHER],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    },
    "temperature": 0.2,
    "top_p": 0.9,
    "max_completion_tokens": 100,
    "stop": ["\n\n"],
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "n": 1,
    "user": "u-1",
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_todays_request_is_read_whole_and_written_back_as_sent() -> None:
    request = decode_request(json.dumps(TODAY))
    assert [m.role for m in request.messages] == ["developer", "user", "assistant", "tool", "user"]
    parts = request.messages[1].content
    assert isinstance(parts, list)
    assert [type(part) for part in parts] == [TextPart, ImagePart]
    assert request.messages[1].text == "Weather in Paris? And what is this?"
    assert request.messages[2].content is None
    assert request.messages[2].tool_calls is not None
    assert request.messages[2].tool_calls[0].function.name == "get_weather"
    assert isinstance(request.tool_choice, NamedToolChoice)
    assert isinstance(request.response_format, JsonSchemaFormat)
    assert request.include_usage
    # Nothing the client sent is lost on the way back out.
    assert json.loads(msgspec.json.encode(request)) == TODAY


def test_unknown_top_level_fields_are_ignored() -> None:
    request = decode_request(b'{"messages": [{"role": "user", "content": "hi"}], "logit_bias": {}}')
    assert json.loads(msgspec.json.encode(request)) == {
        "messages": [{"role": "user", "content": "hi"}]
    }


def test_python_values_are_checked_the_same_way() -> None:
    assert request_from(TODAY) == decode_request(json.dumps(TODAY))
    with pytest.raises(InvalidRequest, match=r"^messages\[0\]\.role: "):
        request_from({"messages": [{"role": "bot", "content": "x"}]})


def user(content: Any) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "first"}, {"role": "user", "content": content}]
    }


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, r"^messages: this field is required"),
        ({"messages": []}, r"^messages: expected `array` of length >= 1"),
        ({"messages": "hi"}, r"^messages: expected `array`, got `str`"),
        ({"messages": [{"role": "bot", "content": "x"}]}, r"^messages\[0\]\.role: invalid enum"),
        ({"messages": [{"content": "x"}]}, r"^messages\[0\]: object missing required field `role`"),
        (user(5), r"^messages\[1\]\.content: expected `str \| array \| null`, got `int`"),
        (user([{"type": "audio", "data": "x"}]), r"^messages\[1\]\.content\[0\]\.type: invalid"),
        (user([{"type": "text"}]), r"^messages\[1\]\.content\[0\]: object missing .* `text`"),
        (user(None), r"^messages\[1\]: `content` is required"),
        ({"messages": [{"role": "tool", "content": "x"}]}, r"^messages\[0\]: a tool message needs"),
        ({**user("x"), "n": 2}, r"^n: expected `int` <= 1"),
        ({**user("x"), "temperature": "hot"}, r"^temperature: expected `float \| null`"),
        ({**user("x"), "temperature": -1}, r"^temperature: expected `float` >= 0"),
        ({**user("x"), "max_tokens": 0}, r"^max_tokens: expected `int` >= 1"),
        ({**user("x"), "stop": ["a", "b", "c", "d", "e"]}, r"^stop: expected .* length <= 4"),
        ({**user("x"), "tool_choice": "sometimes"}, r"^tool_choice: invalid"),
        (
            {**user("x"), "tools": [{"type": "function", "function": {"name": "has space"}}]},
            r"^tools\[0\]\.function\.name: expected `str` matching",
        ),
        ({**user("x"), "response_format": {"type": "xml"}}, r"^response_format\.type: invalid"),
        (
            {**user("x"), "stream_options": {"include_usage": "yes"}},
            r"^stream_options\.include_usage: expected `bool \| null`",
        ),
    ],
)
def test_a_bad_field_is_named_by_its_path(body: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        decode_request(json.dumps(body))


@pytest.mark.parametrize("body", [b"", b"{", b"[1, 2]", b'"text"', b"\xff"])
def test_a_body_that_is_no_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match=r"^request: "):
        decode_request(body)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from([*TODAY, "extra"]), JSON_VALUES, max_size=6))
def test_any_json_object_is_a_request_or_an_invalid_request(fields: dict[str, Any]) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], **fields})
    outcome: object
    try:
        outcome = decode_request(body)
    except InvalidRequest as exc:  # nothing else may escape
        outcome = exc
    if isinstance(outcome, InvalidRequest):
        assert re.match(r"^[\w.\[\]]+: \S", str(outcome)), str(outcome)  # a path, then why
    else:
        assert isinstance(outcome, ChatRequest)
