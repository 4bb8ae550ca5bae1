"""Decoding and checking a chat request: chatwire's msgspec Structs against pydantic v2.

The request is what an agent sends mid-conversation: 20 messages (a
developer prompt, user turns with text and image parts, assistant tool calls
and their tool results), four tools with JSON-Schema parameters, a
``json_schema`` response format and the sampling fields. Both sides get the
same JSON bytes and must produce a checked object or an error naming the
field:

- chatwire: ``chatwire._models.decode_request`` (msgspec's C decoder into
  Structs, the cross-field checks in ``__post_init__``);
- pydantic: a pydantic v2 model of the same schema (discriminated unions for
  parts, tools and formats; the same cross-field checks as model
  validators), ``model_validate_json``: what FastAPI, vLLM and LiteLLM use.

Reported: requests decoded per second by each (best of ``--repeats`` runs of
``--count`` decodes) and their ratio; the bar is chatwire >= 1x pydantic.

Run: ``python bench/request_decode.py [--count 20000] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Annotated, Any, Literal

from _env import ensure_venv


def request_body() -> bytes:
    tools = [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"Look up {name.replace('_', ' ')}.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "limit": {"type": "integer", "minimum": 1},
                    },
                    "required": ["query"],
                },
            },
        }
        for name in ("get_weather", "search_docs", "read_file", "run_query")
    ]
    messages: list[dict[str, Any]] = [{"role": "developer", "content": "Be brief and exact."}]
    for turn in range(4):
        messages += [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"Question {turn}: what does the chart show?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{turn}",
                        "type": "function",
                        "function": {"name": "search_docs", "arguments": '{"query": "chart"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": f"call_{turn}", "content": "Sales rose 12%."},
            {"role": "assistant", "content": "Sales rose by 12 percent over the quarter."},
        ]
    messages += [{"role": "user", "content": "Summarise all of it."}] * (20 - len(messages))
    body = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "summary", "schema": {"type": "object"}, "strict": True},
        },
        "temperature": 0.2,
        "max_completion_tokens": 400,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert len(messages) == 20
    return json.dumps(body).encode()


def pydantic_decoder() -> Any:
    from pydantic import BaseModel, ConfigDict, Field, model_validator

    class Strict(BaseModel):
        model_config = ConfigDict(extra="ignore")

    class TextPart(Strict):
        type: Literal["text"]
        text: str

    class ImageURL(Strict):
        url: str
        detail: Literal["auto", "low", "high"] | None = None

    class ImagePart(Strict):
        type: Literal["image_url"]
        image_url: ImageURL

    Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]

    class FunctionCall(Strict):
        name: str
        arguments: str

    class ToolCall(Strict):
        type: Literal["function"]
        id: str
        function: FunctionCall

    class Message(Strict):
        role: Literal["system", "developer", "user", "assistant", "tool"]
        content: str | list[Part] | None = None
        name: str | None = None
        tool_calls: list[ToolCall] | None = None
        tool_call_id: str | None = None

        @model_validator(mode="after")
        def consistent(self) -> Message:
            if self.content is None and not (self.role == "assistant" and self.tool_calls):
                raise ValueError("content is required")
            if self.tool_calls is not None and self.role != "assistant":
                raise ValueError("tool_calls belong to assistant messages")
            if self.role == "tool" and not self.tool_call_id:
                raise ValueError("a tool message needs tool_call_id")
            images = isinstance(self.content, list) and any(
                isinstance(part, ImagePart) for part in self.content
            )
            if images and self.role != "user":
                raise ValueError("image parts belong to user messages")
            return self

    Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

    class FunctionDefinition(Strict):
        name: Name
        description: str | None = None
        parameters: dict[str, Any] | None = None
        strict: bool | None = None

    class Tool(Strict):
        type: Literal["function"]
        function: FunctionDefinition

    class NamedFunction(Strict):
        name: Name

    class NamedToolChoice(Strict):
        type: Literal["function"]
        function: NamedFunction

    class TextFormat(Strict):
        type: Literal["text"]

    class JsonObjectFormat(Strict):
        type: Literal["json_object"]

    class JsonSchema(Strict):
        name: Name
        schema_: dict[str, Any] | None = Field(default=None, alias="schema")
        description: str | None = None
        strict: bool | None = None

    class JsonSchemaFormat(Strict):
        type: Literal["json_schema"]
        json_schema: JsonSchema

    Format = Annotated[
        TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
    ]

    class StreamOptions(Strict):
        include_usage: bool = False

    class ChatRequest(Strict):
        messages: Annotated[list[Message], Field(min_length=1)]
        model: str | None = None
        stream: bool = False
        stream_options: StreamOptions | None = None
        tools: list[Tool] | None = None
        tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
        parallel_tool_calls: bool | None = None
        response_format: Format | None = None
        temperature: Annotated[float, Field(ge=0)] | None = None
        top_p: Annotated[float, Field(ge=0, le=1)] | None = None
        max_tokens: Annotated[int, Field(ge=1)] | None = None
        max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
        stop: str | Annotated[list[str], Field(max_length=4)] | None = None
        seed: int | None = None
        presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
        frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
        n: Annotated[int, Field(ge=1, le=1)] | None = None
        user: str | None = None

        @model_validator(mode="after")
        def choice_among_tools(self) -> ChatRequest:
            if self.tool_choice not in (None, "none") and not self.tools:
                raise ValueError("tool_choice needs tools")
            return self

    return ChatRequest.model_validate_json


def best_rate(decode: Any, body: bytes, count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            decode(body)
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import pydantic

    from chatwire._models import decode_request

    body = request_body()
    decoders = {"chatwire": decode_request, "pydantic": pydantic_decoder()}
    for name, decode in decoders.items():
        decoded = decode(body)
        assert len(decoded.messages) == 20, name
        assert len(decoded.tools or ()) == 4, name
    rates = {
        name: best_rate(decode, body, args.count, args.repeats) for name, decode in decoders.items()
    }
    for name, rate in rates.items():
        print(
            f"request_decode {name}: {rate:,.0f} requests/s "
            f"({len(body)} bytes, 20 messages, 4 tools)"
        )
    print(
        f"request_decode chatwire/pydantic {pydantic.VERSION} = "
        f"{rates['chatwire'] / rates['pydantic']:.2f}x (bar >= 1x)"
    )


if __name__ == "__main__":
    main()
