"""The gateway's wire formats, pure: request checks and response encoders.

Requests are checked by hand rather than by a schema library, so every error
names its field the way an OpenAI client would (``messages[2].role``).
"""

from __future__ import annotations

__all__ = [
    "CONVERSATION_HEADER",
    "CONVERSATION_ID_PATTERN",
    "SAMPLING_FIELDS",
    "UNSERVED_FIELDS",
    "ApiError",
    "ChunkEncoder",
    "completion_object",
    "free_chat_event",
    "parse_chat_request",
    "parse_free_chat_request",
]

import json
import time
import uuid
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

from .._errors import InvalidRequest
from .._validate import check_messages

CONVERSATION_HEADER = "X-Chatwire-Conversation"
CONVERSATION_ID_PATTERN = "[A-Za-z0-9_-]{1,64}"


class ApiError(Exception):
    """An error the gateway answers with OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class ChatRequest:
    """A checked chat request: who should answer, and with what."""

    __slots__ = ("include_usage", "messages", "model", "options", "stream")

    def __init__(
        self,
        model: str | None,
        messages: list[Any],
        stream: bool,
        include_usage: bool,
        options: dict[str, Any],
    ) -> None:
        self.model = model
        self.messages = messages
        self.stream = stream
        self.include_usage = include_usage
        self.options = options


def _loads(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "request body must be a JSON object")
    return parsed


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    numeric = kind in (int, float, (int, float))
    if not isinstance(value, kind) or (numeric and isinstance(value, bool)):
        raise ApiError(400, f"'{name}' must be {what}, got {json.dumps(value)[:80]}", param=name)
    return value


# OpenAI request fields the gateway forwards, with their JSON types.
SAMPLING_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "max_tokens": (int, "an integer"),
    "max_completion_tokens": (int, "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "seed": (int, "an integer"),
    "stop": ((str, list), "a string or a list of strings"),
    "presence_penalty": ((int, float), "a number"),
    "frequency_penalty": ((int, float), "a number"),
    "user": (str, "a string"),
    "response_format": (dict, "an object"),
}
# Request fields chatwire knows and cannot serve yet: refused, never dropped.
UNSERVED_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


def parse_chat_request(body: bytes) -> ChatRequest:
    """Check an OpenAI ``/v1/chat/completions`` body."""
    parsed = _loads(body)
    if "messages" not in parsed:
        raise ApiError(400, "'messages' is required", param="messages")
    messages = parsed["messages"]
    try:
        check_messages(messages)  # the providers get them as the client wrote them
    except InvalidRequest as exc:
        raise ApiError(400, str(exc), param="messages") from None
    for name in UNSERVED_FIELDS:
        if parsed.get(name) is not None:
            raise ApiError(400, f"'{name}': chatwire cannot relay tool calls yet", param=name)
    n = _field(parsed, "n", int, "an integer")
    if n is not None and n != 1:
        raise ApiError(400, f"'n' must be 1: one answer is served per request, got {n}", param="n")
    model = _field(parsed, "model", str, "a string")
    stream = bool(_field(parsed, "stream", bool, "true or false"))
    stream_options = _field(parsed, "stream_options", dict, "an object") or {}
    include_usage = stream_options.get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        got = json.dumps(include_usage)[:80]
        raise ApiError(
            400, f"'stream_options.include_usage' must be true or false, got {got}",
            param="stream_options.include_usage",
        )  # fmt: skip
    options: dict[str, Any] = {}
    for name, (kind, what) in SAMPLING_FIELDS.items():
        value = _field(parsed, name, kind, what)
        if value is not None:
            options[name] = value
    if isinstance(options.get("stop"), list) and not all(
        isinstance(item, str) for item in options["stop"]
    ):
        raise ApiError(400, "'stop' must be a string or a list of strings", param="stop")
    for name in ("max_tokens", "max_completion_tokens"):
        # Checked here: one of the two is dropped below, and must not hide a bad value.
        if name in options and options[name] < 1:
            raise ApiError(400, f"'{name}' must be at least 1, got {options[name]}", param=name)
    if "max_completion_tokens" in options:
        options["max_tokens"] = options.pop("max_completion_tokens")
    return ChatRequest(model, messages, stream, bool(include_usage), options)


def parse_free_chat_request(body: bytes) -> list[Any]:
    """The conversation in a Forefront free-chat body: ``messages`` then ``text``."""
    parsed = _loads(body)
    text = parsed.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "'text' must be a string", param="text")
    history = parsed.get("messages")
    if history is None:
        history = []
    elif not isinstance(history, list):
        raise ApiError(400, "'messages' must be a list of messages", param="messages")
    conversation = [*history, {"role": "user", "content": text}]
    try:
        check_messages(conversation)
    except InvalidRequest as exc:
        raise ApiError(400, str(exc), param="messages") from None
    return conversation


class ChunkEncoder:
    """Encodes one answer as ``chat.completion.chunk`` SSE events."""

    def __init__(self, model: str) -> None:
        self._head = {
            "id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model,
        }  # fmt: skip
        # Every content event differs only in its text: build the rest once.
        self._prefix = (
            "data: "
            + json.dumps(self._head)[:-1]
            + ', "choices": [{"index": 0, "delta": {"content": '
        )
        self._suffix = '}, "logprobs": null, "finish_reason": null}]}\n\n'

    def _event(self, payload: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps({**self._head, **payload}).encode() + b"\n\n"

    def role(self) -> bytes:
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                  "finish_reason": None}  # fmt: skip
        return self._event({"choices": [choice]})

    def content(self, text: str) -> bytes:
        # What json.dumps does for a str, without its dispatch: per token, it counts.
        return (self._prefix + _quoted(text) + self._suffix).encode()

    def finish(self, reason: str) -> bytes:
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}
        return self._event({"choices": [choice]})

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._event({"choices": [], "usage": usage})

    @staticmethod
    def error(message: str, type: str = "upstream_error") -> bytes:
        return b"data: " + json.dumps(error_body(message, type)).encode() + b"\n\n"

    DONE = b"data: [DONE]\n\n"


def completion_object(
    model: str, text: str, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


def free_chat_event(text: str) -> bytes:
    """One event of the Forefront free-chat stream."""
    return ('data: {"delta": ' + _quoted(text) + "}\n\n").encode()
