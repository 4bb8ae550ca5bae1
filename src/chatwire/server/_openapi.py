"""The gateway's OpenAPI document, served at ``/openapi.json``.

It is built for the running server: the models it serves and the limits its
providers put on sampling options (``temperature`` at most 2 for the OpenAI
provider, 5 for the local one, ...) are written into the schema, so a request
the schema allows is one this server accepts. The test suite checks that
claim with schemathesis.
"""

from __future__ import annotations

__all__ = ["openapi_document"]

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._models import FUNCTION_NAME_PATTERN
from .._validate import Option
from ._wire import CONVERSATION_HEADER, CONVERSATION_ID_PATTERN

if TYPE_CHECKING:
    from ..providers import Provider
    from ._app import Gateway

# The optional request fields, with their JSON types.
SAMPLING_FIELDS: dict[str, type | tuple[type, ...]] = {
    "max_tokens": int,
    "max_completion_tokens": int,
    "temperature": (int, float),
    "top_p": (int, float),
    "seed": int,
    "stop": (str, list),
    "presence_penalty": (int, float),
    "frequency_penalty": (int, float),
    "user": str,
    "response_format": dict,
    "tools": list,
    "tool_choice": (str, dict),
    "parallel_tool_calls": bool,
}

_JSON = "application/json"
_EVENTS = "text/event-stream"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {
        400: "the request is malformed; the message names the field",
        401: "missing or wrong API key",
        404: "no such model or resource",
        413: "request body over the server's limit",
        429: "the server is at its concurrency limit",
        502: "the provider failed before its first piece of text",
    }
    return {
        str(status): {
            "description": meaning[status],
            "content": {_JSON: {"schema": _ref("Error")}},
        }
        for status in statuses
    }


def _bounded(kind: str, options: Iterable[Option]) -> dict[str, Any]:
    """A numeric schema with the tightest bounds the serving providers enforce."""
    schema: dict[str, Any] = {"type": kind, "nullable": True}
    minimums = [option.minimum for option in options if option.minimum is not None]
    maximums = [option.maximum for option in options if option.maximum is not None]
    if minimums:
        schema["minimum"] = max(minimums)
    if maximums:
        schema["maximum"] = min(maximums)
    return schema


_FUNCTION_NAME = {"type": "string", "pattern": FUNCTION_NAME_PATTERN}
_RESPONSE_FORMAT = {
    "nullable": True,
    "anyOf": [
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string", "enum": ["text", "json_object"]}},
        },
        {
            "type": "object",
            "required": ["type", "json_schema"],
            "properties": {
                "type": {"type": "string", "enum": ["json_schema"]},
                "json_schema": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": _FUNCTION_NAME,
                        "description": {"type": "string", "nullable": True},
                        "schema": {"type": "object", "nullable": True},
                        "strict": {"type": "boolean", "nullable": True},
                    },
                },
            },
        },
    ],
}


_TOOL = {
    "type": "object",
    "required": ["function"],  # "type" may be left out: it can only be "function"
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _FUNCTION_NAME,
                "description": {"type": "string", "nullable": True},
                "parameters": {"type": "object", "nullable": True},
                "strict": {"type": "boolean", "nullable": True},
            },
        },
    },
}
_TOOL_CHOICE = {
    "nullable": True,
    "anyOf": [
        {"type": "string", "enum": ["none", "auto", "required"]},
        {
            "type": "object",
            "required": ["function"],
            "properties": {
                "type": {"type": "string", "enum": ["function"]},
                "function": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": _FUNCTION_NAME},
                },
            },
        },
    ],
}


def _sampling_properties(served: Iterable[Provider]) -> dict[str, Any]:
    """The request fields some served provider takes; any other is refused with a 400."""
    declared: dict[str, list[Option]] = {}
    for provider in served:
        for name, option in provider.fields.items():
            declared.setdefault(name, []).append(option)
        if provider.supports_tools:
            for name in ("tools", "tool_choice", "parallel_tool_calls"):
                declared.setdefault(name, [])
        declared.setdefault("response_format", [])
    properties: dict[str, Any] = {
        "n": {"type": "integer", "nullable": True, "minimum": 1, "maximum": 1}
    }
    for name, kind in SAMPLING_FIELDS.items():
        if name not in declared:
            continue
        options = declared[name]
        if name == "stop":
            properties[name] = {
                "nullable": True,
                "oneOf": [
                    {"type": "string"},
                    {"type": "array", "maxItems": 4, "items": {"type": "string"}},
                ],
            }
        elif name == "response_format":
            properties[name] = _RESPONSE_FORMAT
        elif name == "tools":
            properties[name] = {"type": "array", "nullable": True, "items": _TOOL}
        elif name == "tool_choice":
            properties[name] = _TOOL_CHOICE
        elif kind is bool:
            properties[name] = {"type": "boolean", "nullable": True}
        elif kind is str:
            properties[name] = {"type": "string", "nullable": True}
        else:
            properties[name] = _bounded("integer" if kind is int else "number", options)
    return properties


def _message_schema() -> dict[str, Any]:
    """A message as ``_models.Message`` reads it: every branch declares every field.

    ``content`` may be null (or absent) only on an assistant message that
    calls tools, and a tool message needs the ``tool_call_id`` it answers.
    """
    text_part = {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}},
    }
    image_part = {
        "type": "object",
        "required": ["type", "image_url"],
        "properties": {
            "type": {"type": "string", "enum": ["image_url"]},
            "image_url": {
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {"type": "string"},
                    "detail": {
                        "type": "string",
                        "nullable": True,
                        "enum": ["auto", "low", "high", None],
                    },
                },
            },
        },
    }
    content = {
        "anyOf": [
            {"type": "string"},
            {"type": "array", "items": {"anyOf": [text_part, image_part]}},
        ]
    }
    tool_call = {
        "type": "object",
        "required": ["id", "function"],  # "type" may be left out: it can only be "function"
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": ["function"]},
            "function": {
                "type": "object",
                "required": ["name", "arguments"],
                "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
            },
        },
    }

    def branch(roles: list[str], required: list[str], **changed: Any) -> dict[str, Any]:
        properties = {
            "role": {"type": "string", "enum": roles},
            "content": content,
            "name": {"type": "string", "nullable": True},
            "tool_calls": {"type": "array", "nullable": True, "items": tool_call},
            "tool_call_id": {"type": "string", "nullable": True},
            **changed,
        }
        return {"type": "object", "required": ["role", *required], "properties": properties}

    return {
        "anyOf": [
            branch(["system", "developer", "user", "assistant"], ["content"]),
            branch(["tool"], ["content", "tool_call_id"],
                   tool_call_id={"type": "string", "minLength": 1}),
            branch(["assistant"], ["tool_calls"],
                   content={**content, "nullable": True},
                   tool_calls={"type": "array", "minItems": 1, "items": tool_call}),
        ]
    }  # fmt: skip


def _model_schema(gateway: Gateway) -> dict[str, Any]:
    default = gateway.providers[gateway.default]
    schema: dict[str, Any] = {"type": "string", "nullable": True}
    if not default.accepts_any_model:
        names = set(gateway.providers)
        for name, provider in gateway.providers.items():
            names.update(provider.models)
            names.update(f"{name}/{model}" for model in provider.models)
        schema["enum"] = sorted(names)
    return schema


def _components(gateway: Gateway) -> dict[str, Any]:
    message = _message_schema()
    chat_request = {
        "type": "object",
        "required": ["messages"],
        "properties": {
            "model": _model_schema(gateway),
            "messages": {"type": "array", "minItems": 1, "items": _ref("Message")},
            "stream": {"type": "boolean", "nullable": True},
            "stream_options": {
                "type": "object",
                "nullable": True,
                "properties": {"include_usage": {"type": "boolean", "nullable": True}},
            },
            **_sampling_properties(gateway.providers.values()),
        },
    }
    choice = {
        "type": "object",
        "required": ["index", "message", "finish_reason"],
        "properties": {
            "index": {"type": "integer"},
            "message": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
            },
            "finish_reason": {"type": "string"},
        },
    }
    completion = {
        "type": "object",
        "required": ["id", "object", "created", "model", "choices", "usage"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": {"type": "integer"},
            "model": {"type": "string"},
            "choices": {"type": "array", "items": choice},
            "usage": {"type": "object"},
        },
    }
    model_list = {
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "object", "owned_by"],
                    "properties": {
                        "id": {"type": "string"},
                        "object": {"type": "string", "enum": ["model"]},
                        "owned_by": {"type": "string"},
                    },
                },
            },
        },
    }
    free_chat = {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string"},
            "messages": {"type": "array", "nullable": True, "items": _ref("Message")},
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": "string", "nullable": True},
                    "code": {"type": "string", "nullable": True},
                },
            }
        },
    }
    return {
        "Message": message,
        "ChatCompletionRequest": chat_request,
        "ChatCompletion": completion,
        "ModelList": model_list,
        "FreeChatRequest": free_chat,
        "Error": error,
        "ConversationList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {"object": {"type": "string"}, "data": {"type": "array"}},
        },
        "Conversation": {
            "type": "object",
            "required": ["id", "exchanges"],
            "properties": {"id": {"type": "string"}, "exchanges": {"type": "array"}},
        },
    }


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": _ref(schema)}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


def _paths(gateway: Gateway) -> dict[str, Any]:
    conversation_header = {
        "name": CONVERSATION_HEADER,
        "in": "header",
        "required": False,
        "description": "the logged conversation this exchange continues",
        "schema": {"type": "string", "pattern": f"^{CONVERSATION_ID_PATTERN}$"},
    }
    # text/event-stream: under OpenAPI 3.0 the schema describes one event. Each
    # carries a JSON object (a chunk, a delta or an error) or the [DONE] mark.
    events = {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "string", "pattern": r"^(\[DONE\]|\{.*\})$"},
                "event": {"type": "string", "enum": ["message"]},
            },
        }
    }
    log_errors = _errors(401, 404) if gateway.api_key else _errors(404)
    auth_errors = _errors(401) if gateway.api_key else {}
    return {
        "/v1/chat/completions": {
            "post": {
                "summary": "OpenAI chat completions, streamed or whole",
                "parameters": [conversation_header],
                "requestBody": _json_body("ChatCompletionRequest"),
                "responses": {
                    "200": {
                        "description": "a chat.completion, or chat.completion.chunk events",
                        "content": {_JSON: {"schema": _ref("ChatCompletion")}, _EVENTS: events},
                    },
                    **_errors(400, 404, 413, 429, 502),
                    **auth_errors,
                },
            }
        },
        "/free-chat": {
            "post": {
                "summary": "The Forefront free-chat protocol",
                "parameters": [conversation_header],
                "requestBody": _json_body("FreeChatRequest"),
                "responses": {
                    "200": {
                        "description": 'data: {"delta": ...} events',
                        "content": {_EVENTS: events},
                    },
                    **_errors(400, 413, 429, 502),
                    **auth_errors,
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "The models this server serves, as provider/model ids",
                "responses": {
                    "200": _ok("the models", "ModelList"),
                    **auth_errors,
                },
            }
        },
        "/v1/conversations": {
            "get": {
                "summary": "The logged conversations, newest first",
                "responses": {
                    "200": _ok("conversations", "ConversationList"),
                    **log_errors,
                },
            }
        },
        "/v1/conversations/{cid}": {
            "get": {
                "summary": "One logged conversation",
                "parameters": [
                    {"name": "cid", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _ok("its exchanges", "Conversation"),
                    **log_errors,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness; needs no key",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the server is up",
                        "content": {_JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }


def openapi_document(gateway: Gateway) -> dict[str, Any]:
    """The OpenAPI 3.0 description of this gateway, as a JSON-ready dict."""
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "chatwire gateway",
            "version": __version__,
            "description": "OpenAI chat completions and the Forefront free-chat protocol "
            "in front of chatwire providers: " + ", ".join(gateway.providers),
        },
        "paths": _paths(gateway),
        "components": {"schemas": _components(gateway)},
    }
    if gateway.api_key:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
