"""The Forefront free-chat provider, as the seed describes it, to the byte.

The request is the seed's JSON body, POSTed to the free-chat endpoint; the
answer is a Server-Sent-Events stream whose events carry
``{"delta": "<text>"}``. The original endpoint is long gone, so the provider
is marked not ``working`` unless ``CHATWIRE_FOREFRONT_URL`` points it at a
server that speaks the protocol (chatwire's own gateway does, at
``/free-chat``); ``base_url=`` does the same per call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ProtocolError
from .._sse import shown
from ._base import describe_params, seed_functions, text_messages
from ._http import HTTPProvider
from ._protocol import (
    HTTP_OPTIONS,
    EndOfStream,
    WireRequest,
    json_request,
    read_batch,
    upstream_error,
    url_from,
)

if TYPE_CHECKING:
    from .._models import ChatRequest

__all__ = [
    "DEFAULT_ENDPOINT",
    "accepts_any_model",
    "model",
    "needs_auth",
    "options",
    "params",
    "provider",
    "supports_stream",
    "url",
    "working",  # noqa: F822 - computed by the module __getattr__
]

url = "https://forefront.com"
model = ["gpt-3.5-turbo"]
supports_stream = True
needs_auth = False
accepts_any_model = False
options = HTTP_OPTIONS

DEFAULT_ENDPOINT = "https://streaming.tenant-forefront-default.knative.chi.coreweave.com/free-chat"
ENDPOINT_ENV = "CHATWIRE_FOREFRONT_URL"
MESSAGE_PERSONA = "607e41fe-95be-497e-8e97-010a59b2e2c0"


def __getattr__(name: str) -> Any:
    # ``working`` follows the environment: the default endpoint is gone, but a
    # configured one may well be up.
    if name == "working":
        return bool(os.environ.get(ENDPOINT_ENV))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def request_body(messages: list[Any]) -> dict[str, Any]:
    """The seed's JSON body for a conversation."""
    return {
        "text": messages[-1]["content"],
        "action": "noauth",
        "id": "",
        "parentId": "",
        "workspaceId": "",
        "messagePersona": MESSAGE_PERSONA,
        "model": "gpt-4",
        "messages": messages[:-1] if len(messages) > 1 else [],
        "internetMode": "auto",
    }


def read_event(data: str, meta: dict[str, Any] | None = None) -> str | None:
    """The text of one event: its ``delta``, or ``None`` for other events."""
    if data == "[DONE]":
        raise EndOfStream
    try:
        parsed = json.loads(data)
    except ValueError:
        if "\n" in data:
            # Servers written for the seed's line parser may send one JSON
            # object per ``data:`` line with no blank line between them.
            return "".join(filter(None, (read_event(line, meta) for line in data.split("\n"))))
        raise ProtocolError("event data is not JSON", line=shown(data.encode())) from None
    if not isinstance(parsed, dict):
        return None
    if "error" in parsed:
        raise upstream_error(parsed, data)
    delta = parsed.get("delta")
    if delta is None:
        return None
    if not isinstance(delta, str):
        raise ProtocolError("'delta' is not a string", line=shown(data.encode()))
    return delta


def _plain_delta(event: Any) -> str | None:
    delta = event["delta"]
    return delta if delta.__class__ is str else None


def read_events(datas: list[str], meta: dict[str, Any]) -> list[str]:
    """The deltas of a batch of events, in order."""
    return read_batch(datas, meta, read_event, _plain_delta)


class Forefront(HTTPProvider):
    """Text in, text out: no tools, images, structured output or sampling fields."""

    name = "forefront"
    url = url
    models = tuple(model)
    options = options

    @property
    def working(self) -> bool:
        return bool(os.environ.get(ENDPOINT_ENV))

    def check_request(self, request: ChatRequest, options: dict[str, Any]) -> dict[str, Any]:
        """The endpoint settled: given, else from the environment, else the seed's."""
        return {**options, "base_url": url_from(options, ENDPOINT_ENV, DEFAULT_ENDPOINT)}

    def wire(self, request: ChatRequest, model: str, options: Mapping[str, Any]) -> WireRequest:
        return json_request(
            "forefront",
            options["base_url"],
            request_body(text_messages(request)),
            read_events=read_events,
            options=options,
        )


provider = Forefront()


_create_completion, _create_async_completion = seed_functions(provider)
params = describe_params(__name__, _create_completion)
