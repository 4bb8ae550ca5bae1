"""The gateway's bodies as msgspec Structs, and what each route says of itself.

The request bodies are the typed request itself (``_models.ChatRequest``) and
the free-chat body; the answers are described here. ``/openapi.json`` is
generated from these Structs and from the ``Operation`` each route's endpoint
carries (``documented``), so the document cannot drift from the routes.
"""

from __future__ import annotations

__all__ = [
    "ChatCompletion",
    "Conversation",
    "ConversationList",
    "ErrorBody",
    "FreeChatRequest",
    "Health",
    "ModelList",
    "Operation",
    "documented",
]

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from msgspec import Struct

from .._models import Message, ToolCall


class FreeChatRequest(Struct, kw_only=True):
    """The Forefront free-chat body: the new text, after the conversation so far."""

    text: str
    messages: list[Message] | None = None


class CompletionMessage(Struct, kw_only=True, omit_defaults=True):
    role: Literal["assistant"]
    content: str | None
    tool_calls: list[ToolCall] | None = None


class Choice(Struct, kw_only=True):
    index: int
    message: CompletionMessage
    finish_reason: str
    logprobs: None = None


class Usage(Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(Struct, kw_only=True):
    """A whole answer (``stream`` false)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ModelCard(Struct, kw_only=True):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Struct, kw_only=True):
    object: Literal["list"]
    data: list[ModelCard]


class ErrorDetail(Struct, kw_only=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(Struct, kw_only=True):
    """OpenAI's error body."""

    error: ErrorDetail


class ConversationSummary(Struct, kw_only=True):
    id: str
    title: str
    updated_at: str
    exchanges: int


class ConversationList(Struct, kw_only=True):
    object: Literal["list"]
    data: list[ConversationSummary]


class Conversation(Struct, kw_only=True):
    """One logged conversation: its exchanges in order, as ``chatwire logs --json`` shows them."""

    id: str
    exchanges: list[dict[str, Any]]


class LogHealth(Struct, kw_only=True):
    """The conversation log as this process sees it."""

    reachable: bool
    queued: int  # records waiting to be written
    dropped: int  # records lost because the queue was full


class Health(Struct, kw_only=True):
    status: str
    log: LogHealth | None  # None: this server keeps no log


class Operation:
    """How one route appears in the OpenAPI document."""

    __slots__ = ("answer", "body", "conversation", "errors", "events", "public", "summary")

    def __init__(
        self,
        summary: str,
        *,
        answer: type | None = None,
        body: type | None = None,
        events: str | None = None,
        errors: tuple[int, ...] = (),
        conversation: bool = False,
        public: bool = False,
    ) -> None:
        self.summary = summary
        self.answer = answer  # the JSON body of a 200, if it has one
        self.body = body  # the JSON request body, if it takes one
        self.events = events  # what a 200 event stream carries, if it streams
        self.errors = errors
        self.conversation = conversation  # takes the conversation header
        self.public = public  # needs no key


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def documented(operation: Operation) -> Callable[[_Endpoint], _Endpoint]:
    """Attach ``operation`` to an endpoint, for ``/openapi.json``."""

    def attach(endpoint: _Endpoint) -> _Endpoint:
        endpoint.openapi = operation  # type: ignore[attr-defined]
        return endpoint

    return attach
