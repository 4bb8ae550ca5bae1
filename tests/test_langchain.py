"""LangChain's ChatOpenAI, a client many applications use, against the gateway."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from openai import BadRequestError
from pydantic import BaseModel

from chatwire.server import create_app
from tests.servers import running


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatOpenAI]:
    with running(create_app("local")) as gateway:
        yield ChatOpenAI(
            base_url=gateway.url("/v1"), api_key="unused", model="local",  # type: ignore[arg-type]
            temperature=0, max_tokens=16, max_retries=0,
        )  # fmt: skip


def test_invoke_with_parts_and_a_system_message(chat: ChatOpenAI) -> None:
    # LangChain sends a message's content as a list of parts when it holds parts.
    question = HumanMessage(content=[{"type": "text", "text": "Say hello."}])
    reply = chat.invoke([SystemMessage("Be brief."), question])
    assert isinstance(reply.content, str)
    assert reply.content
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] >= 1


def test_stream_gives_the_same_answer_as_invoke(chat: ChatOpenAI) -> None:
    whole = chat.invoke("Say hello.")
    streamed = "".join(str(chunk.content) for chunk in chat.stream("Say hello."))
    assert streamed == whole.content


def test_structured_output_with_a_json_schema(chat: ChatOpenAI) -> None:
    class Pick(BaseModel):
        colour: str
        count: int

    picked = chat.with_structured_output(Pick, method="json_schema").invoke(
        "Pick a colour and a number."
    )
    assert isinstance(picked, Pick)


def test_bind_tools_without_a_required_call_is_refused_by_name(chat: ChatOpenAI) -> None:
    # The embedded model calls a tool only when told to (test_tool_calls.py);
    # left to decide, it says so, never answering in prose instead.
    class GetWeather(BaseModel):
        """The weather in a city."""

        city: str

    with pytest.raises(BadRequestError, match="calls a tool only when tool_choice requires one"):
        chat.bind_tools([GetWeather]).invoke("What is the weather in Paris?")
