"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint.

OpenAI itself, Ollama, vLLM, llama.cpp's server, chatwire's own gateway:
``base_url=`` or ``OPENAI_BASE_URL`` picks the server (default
``https://api.openai.com/v1``), ``api_key=`` or ``OPENAI_API_KEY`` the key.
A key is required against OpenAI's own URL and checked before any I/O.
Streaming asks the server for usage (``stream_options.include_usage``) and
records it in the reply's ``meta`` when the server sends it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import InvalidRequest, ProtocolError
from .._models import ToolCallDelta
from .._sse import shown
from .._validate import Option
from ._base import describe_params, seed_functions
from ._http import HTTPProvider
from ._protocol import (
    HTTP_OPTIONS,
    EndOfStream,
    WireRequest,
    header_safe,
    json_request,
    read_batch,
    upstream_error,
    url_from,
)

if TYPE_CHECKING:
    from .._models import ChatRequest

__all__ = [
    "DEFAULT_BASE_URL",
    "accepts_any_model",
    "model",
    "needs_auth",
    "options",
    "params",
    "provider",
    "supports_stream",
    "url",
    "working",
]

url = "https://platform.openai.com"
model = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1", "o4-mini"]
supports_stream = True
needs_auth = True
working = True
# Compatible servers name their models freely (llama3, qwen2.5:7b, ...).
accepts_any_model = True

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"

options: Mapping[str, Option] = {
    **HTTP_OPTIONS,
    "api_key": Option("api_key", str, "an API key (printable ASCII)", check=header_safe),
}

# The request fields it serves, with OpenAI's bounds where the typed request has none.
_FIELDS: Mapping[str, Option] = {
    option.name: option
    for option in (
        Option("max_tokens", int, "tokens", minimum=1),
        Option("max_completion_tokens", int, "tokens", minimum=1),
        Option("temperature", float, "a number from 0 to 2", minimum=0.0, maximum=2.0),
        Option("top_p", float, "a number from 0 to 1", minimum=0.0, maximum=1.0),
        Option("stop", list, "a string or a list of strings"),
        Option("seed", int, "a whole number"),
        Option("presence_penalty", float, "a number from -2 to 2", minimum=-2, maximum=2),
        Option("frequency_penalty", float, "a number from -2 to 2", minimum=-2, maximum=2),
        Option("user", str, "an end-user id"),
    )
}


def read_event(data: str, meta: dict[str, Any]) -> str | list[Any] | None:
    """The content delta of one ``chat.completion.chunk`` event, with its tool-call deltas."""
    if data == "[DONE]":
        raise EndOfStream
    try:
        parsed = json.loads(data)
    except ValueError:
        raise ProtocolError("event data is not JSON", line=shown(data.encode())) from None
    if not isinstance(parsed, dict):
        raise ProtocolError("event data is not a JSON object", line=shown(data.encode()))
    if "error" in parsed:
        raise upstream_error(parsed, data)
    if parsed.get("usage"):
        meta["usage"] = parsed["usage"]
    choices = parsed.get("choices")
    if not choices:
        if "choices" not in parsed and "usage" not in parsed:
            raise ProtocolError("event has neither choices nor usage", line=shown(data.encode()))
        return None
    try:
        choice = choices[0]
        if choice.get("finish_reason"):
            meta["finish_reason"] = choice["finish_reason"]
        delta = choice.get("delta") or {}
        content = delta.get("content")
        calls = delta.get("tool_calls")
        deltas = [_tool_call_delta(call) for call in calls] if calls else []
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        raise ProtocolError("malformed choices in event", line=shown(data.encode())) from None
    if content is not None and not isinstance(content, str):
        raise ProtocolError("delta content is not a string", line=shown(data.encode()))
    if deltas:
        return [content, *deltas] if content else deltas
    return content


def _tool_call_delta(call: dict[str, Any]) -> ToolCallDelta:
    function = call.get("function") or {}
    arguments = function.get("arguments") or ""
    if not isinstance(arguments, str):
        raise ValueError("tool call arguments are not a string")
    return ToolCallDelta(int(call["index"]), call.get("id"), function.get("name"), arguments)


def _plain_content(event: Any) -> str | None:
    # The common event: one choice, a text delta, nothing else to note.
    (choice,) = event["choices"]
    content = choice["delta"]["content"]
    if content.__class__ is not str or choice.get("finish_reason") or event.get("usage"):
        return None
    return content


def read_events(datas: list[str], meta: dict[str, Any]) -> list[str]:
    """The content deltas of a batch of events, in order."""
    return read_batch(datas, meta, read_event, _plain_content)


def read_body(body: bytes, meta: dict[str, Any]) -> list[Any]:
    """The message content of a whole ``chat.completion`` object, and its tool calls."""
    try:
        parsed = json.loads(body)
    except ValueError:
        raise ProtocolError("response is not JSON", line=shown(body)) from None
    if isinstance(parsed, dict) and "error" in parsed:
        raise upstream_error(parsed, body.decode("utf-8", "replace"))
    try:
        choice = parsed["choices"][0]
        content = choice["message"].get("content") or ""
        calls = [
            ToolCallDelta(index, call["id"], call["function"]["name"],
                          call["function"].get("arguments") or "")
            for index, call in enumerate(choice["message"].get("tool_calls") or ())
        ]  # fmt: skip
    except (AttributeError, IndexError, KeyError, TypeError):
        raise ProtocolError("response has no choices[0].message", line=shown(body)) from None
    if not isinstance(content, str):
        raise ProtocolError("message content is not a string", line=shown(body))
    if parsed.get("usage"):
        meta["usage"] = parsed["usage"]
    if choice.get("finish_reason"):
        meta["finish_reason"] = choice["finish_reason"]
    return [content, *calls] if content else calls


class OpenAICompatible(HTTPProvider):
    """Everything the request holds goes upstream as the client wrote it."""

    name = "openai"
    url = url
    models = tuple(model)
    accepts_any_model = True
    needs_auth = True
    supports_tools = True
    supports_images = True
    supports_structured_output = True
    fields = _FIELDS
    options = options

    def check_request(self, request: ChatRequest, options: dict[str, Any]) -> dict[str, Any]:
        """The base URL and key settled: given, else from the environment."""
        base = url_from(options, BASE_URL_ENV, DEFAULT_BASE_URL).rstrip("/")
        key = options.get("api_key") or os.environ.get(API_KEY_ENV)
        if key and not header_safe(key):
            raise InvalidRequest(f"{API_KEY_ENV} must be printable ASCII (it goes into a header)")
        if not key and base == DEFAULT_BASE_URL:
            raise InvalidRequest(
                f"provider 'openai' needs an API key for {DEFAULT_BASE_URL}: "
                f"pass api_key= or set {API_KEY_ENV}"
            )
        return {**options, "base_url": base, "api_key": key}

    def wire(self, request: ChatRequest, model: str, options: Mapping[str, Any]) -> WireRequest:
        base, key = options["base_url"], options["api_key"]
        stream = bool(request.stream)
        payload = dict(request.as_sent())
        payload["model"] = model
        payload["stream"] = stream
        if stream and not request.include_usage:
            payload["stream_options"] = {**(payload.get("stream_options") or {}),
                                         "include_usage": True}  # fmt: skip
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if not stream:
            headers["Accept"] = "application/json"
        return json_request(
            "openai",
            base + "/chat/completions",
            payload,
            read_events=read_events,
            read_body=None if stream else read_body,
            options=options,
            headers=headers,
        )


provider = OpenAICompatible()


_create_completion, _create_async_completion = seed_functions(provider)
params = describe_params(__name__, _create_completion)
