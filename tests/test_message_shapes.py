"""Messages as today's clients write them: content parts, developer, tool calls and results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import chatwire
from chatwire._models import request_from
from chatwire.providers._base import text_messages
from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import ScriptedServer, ThreadedServer, running

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TODAY: list[dict[str, Any]] = [
    {"role": "developer", "content": "Answer in one sentence."},
    {"role": "user", "name": "ann", "content": [
        {"type": "text", "text": "What is the weather "}, {"type": "text", "text": "in Paris?"},
    ]},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18 C and cloudy"},
    {"role": "user", "content": "So, what is it like?"},
]  # fmt: skip
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def test_the_openai_provider_sends_messages_on_exactly_as_written(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    with_image = [
        *TODAY,
        {"role": "user", "content": [{"type": "text", "text": "And this?"}, IMAGE]},
    ]
    answer = chatwire.ChatCompletion.create(
        messages=with_image, provider="openai", model="m",
        base_url=server.url("/compatible/v1"),
    )  # fmt: skip
    assert answer == "Hello, world!"
    assert server_app.requests[-1].json["messages"] == with_image


def test_seed_style_providers_get_text_and_the_three_old_roles(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    chatwire.ChatCompletion.create(
        messages=plain, provider="forefront", base_url=server.url("/free-chat")
    )
    sent_plain = server_app.requests[-1].json
    newer = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "H"}, {"type": "text", "text": "i"}]},
    ]
    chatwire.ChatCompletion.create(
        messages=newer, provider="forefront", base_url=server.url("/free-chat")
    )
    # The seed's body, unchanged: the developer's words as system, the parts joined.
    assert server_app.requests[-1].json == sent_plain
    assert sent_plain["text"] == "Hi"
    assert sent_plain["messages"] == [{"role": "system", "content": "Be brief."}]


SEE = [{"role": "user", "content": [{"type": "text", "text": "see"}, IMAGE]}]


@pytest.mark.parametrize(
    ("provider", "messages", "says"),
    [
        ("forefront", SEE, r"messages\[0\]\.content\[1\]: provider 'forefront' cannot read images"),
        ("local", SEE, r"messages\[0\]\.content\[1\]: provider 'local' cannot read images"),
        ("forefront", TODAY, r"messages\[2\]\.tool_calls: provider 'forefront' cannot call tools"),
        ("forefront", TODAY[3:], r"messages\[0\]\.role: provider 'forefront' cannot call tools"),
    ],
)
def test_what_a_provider_cannot_read_is_refused_before_any_io(
    server: ThreadedServer, server_app: ScriptedServer, provider: str, messages: Any, says: str
) -> None:
    where = {"base_url": server.url("/free-chat")} if provider == "forefront" else {}
    with pytest.raises(chatwire.InvalidRequest, match=says):
        chatwire.ChatCompletion.create(messages=messages, provider=provider, **where)
    assert server_app.requests == []


def test_the_embedded_model_reads_tool_turns_as_text() -> None:
    rendered = text_messages(request_from({"messages": TODAY}))
    assert rendered == [
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is the weather in Paris?", "name": "ann"},
        {"role": "assistant",
         "content": '[tool call call_1: get_weather({"city": "Paris"})]'},
        {"role": "user", "content": "[result of tool call call_1]\n18 C and cloudy"},
        TODAY[-1],
    ]  # fmt: skip
    answer = chatwire.ChatCompletion.create(messages=TODAY, temperature=0, max_tokens=24)
    assert answer.strip()


@pytest.fixture(scope="module")
def logged_local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    store = Store(Path(tmp_path_factory.mktemp("shapes")) / "log.db")
    with running(create_app("local", store=store)) as gateway:
        yield gateway


def test_the_openai_sdk_sends_todays_shapes_through_the_gateway(
    logged_local_gateway: ThreadedServer,
) -> None:
    client = openai.OpenAI(base_url=logged_local_gateway.url("/v1"), api_key="-", max_retries=0)
    whole = client.chat.completions.create(
        model="local",
        messages=TODAY,
        temperature=0,
        max_tokens=24,  # type: ignore[arg-type]
    )
    assert whole.choices[0].message.content
    stream = client.chat.completions.create(
        model="local", messages=TODAY, temperature=0, max_tokens=24, stream=True,  # type: ignore[arg-type]
    )  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == whole.choices[0].message.content
    # The log shows the text the user asked, parts or not.
    listing = httpx.get(logged_local_gateway.url("/v1/conversations")).json()["data"]
    assert {c["title"] for c in listing} == {"So, what is it like?"}


def test_an_image_for_the_embedded_model_is_a_400_naming_it(
    logged_local_gateway: ThreadedServer,
) -> None:
    body = {"messages": [{"role": "user", "content": [IMAGE]}]}
    reply = httpx.post(logged_local_gateway.url("/v1/chat/completions"), json=body)
    assert reply.status_code == 400
    assert "messages[0].content[0]: provider 'local' cannot read images" in reply.text
