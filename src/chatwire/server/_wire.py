"""The gateway's wire formats, pure: request decoding and response encoders.

A chat request is decoded into the typed request (``_models``) in one pass;
every error names its field the way an OpenAI client would
(``messages[2].role``).
"""

from __future__ import annotations

__all__ = [
    "CONVERSATION_HEADER",
    "CONVERSATION_ID_PATTERN",
    "ApiError",
    "ChunkEncoder",
    "bad_request",
    "completion_object",
    "free_chat_event",
    "parse_chat_request",
    "parse_free_chat_request",
]

import json
import re
import time
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any

import msgspec

from .._errors import InvalidRequest
from .._models import ChatRequest, decode_request, request_from
from .._process import random_hex

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


_FIELD = re.compile(r"^([a-z_]+)[\[.:]")


def bad_request(exc: InvalidRequest) -> ApiError:
    """A 400 for ``exc``; ``param`` is the field its message starts with, as OpenAI names it.

    ``messages[2].content: ...`` has param ``messages``.
    """
    field = _FIELD.match(str(exc))
    param = field[1] if field and field[1] != "request" else None  # "request": the whole body
    return ApiError(400, str(exc), param=param)


def parse_chat_request(body: bytes) -> ChatRequest:
    """An OpenAI ``/v1/chat/completions`` body, typed and checked in one pass.

    What the chosen provider cannot serve is refused when it is chosen.
    """
    try:
        return decode_request(body)
    except InvalidRequest as exc:
        raise bad_request(exc) from None


def parse_free_chat_request(body: bytes) -> ChatRequest:
    """The conversation in a Forefront free-chat body (``messages`` then ``text``), typed."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "request body must be a JSON object")
    text = parsed.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "'text' must be a string", param="text")
    history = parsed.get("messages")
    if history is None:
        history = []
    elif not isinstance(history, list):
        raise ApiError(400, "'messages' must be a list of messages", param="messages")
    try:
        return request_from({"messages": [*history, {"role": "user", "content": text}]})
    except InvalidRequest as exc:
        raise ApiError(400, str(exc), param="messages") from None


_encode = msgspec.json.Encoder().encode


def _completion_id() -> str:
    # As long and as random as a version-4 UUID's hex, without building one.
    return "chatcmpl-" + random_hex(32)


class ChunkEncoder:
    """Encodes one answer as ``chat.completion.chunk`` SSE events."""

    def __init__(self, model: str) -> None:
        self._head = {
            "id": _completion_id(), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": model,
        }  # fmt: skip
        # Every content event differs only in its text: build the rest once.
        self._prefix = (
            "data: "
            + _encode(self._head).decode()[:-1]
            + ', "choices": [{"index": 0, "delta": {"content": '
        )
        self._suffix = '}, "logprobs": null, "finish_reason": null}]}\n\n'

    def _event(self, payload: dict[str, Any]) -> bytes:
        return b"data: " + _encode({**self._head, **payload}) + b"\n\n"

    def role(self) -> bytes:
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                  "finish_reason": None}  # fmt: skip
        return self._event({"choices": [choice]})

    def content(self, text: str) -> bytes:
        # What json.dumps does for a str, without its dispatch: per token, it counts.
        return (self._prefix + _quoted(text) + self._suffix).encode()

    def tool_call(self, delta: Any) -> bytes:
        """A ``ToolCallDelta`` as OpenAI streams it: the first piece of a call names it."""
        call: dict[str, Any] = {"index": delta.index}
        if delta.id is not None:
            call["id"] = delta.id
            call["type"] = "function"
        function: dict[str, Any] = {"arguments": delta.arguments}
        if delta.name is not None:
            function["name"] = delta.name
        call["function"] = function
        choice = {"index": 0, "delta": {"tool_calls": [call]}, "logprobs": None,
                  "finish_reason": None}  # fmt: skip
        return self._event({"choices": [choice]})

    def finish(self, reason: str) -> bytes:
        choice = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}
        return self._event({"choices": [choice]})

    def usage(self, usage: dict[str, Any]) -> bytes:
        return self._event({"choices": [], "usage": usage})

    @staticmethod
    def error(message: str, type: str = "upstream_error") -> bytes:
        return b"data: " + _encode(error_body(message, type)) + b"\n\n"

    DONE = b"data: [DONE]\n\n"


def completion_object(
    model: str,
    text: str,
    finish_reason: str,
    usage: dict[str, Any],
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:  # as OpenAI answers a call: no text is null, not ""
        message.update(content=text or None, tool_calls=tool_calls)
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
    }


def free_chat_event(text: str) -> bytes:
    """One event of the Forefront free-chat stream."""
    return ('data: {"delta": ' + _quoted(text) + "}\n\n").encode()
