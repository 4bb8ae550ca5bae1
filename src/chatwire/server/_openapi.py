"""The gateway's OpenAPI 3.1 document, served at ``/openapi.json``, generated.

The bodies' schemas come from the msgspec Structs the gateway decodes into
(``_models.ChatRequest``) and those describing its answers (``_documents``);
the paths come from the route table, each endpoint carrying its
``Operation``. Then the document is fitted to the running server: the models
it serves, the request fields some served provider takes (others are left
out: the server refuses them) and the tightest bounds those providers put on
them (``temperature`` at most 2 for the OpenAI provider, 5 for the local one),
so a request the schema allows is one this server accepts. The test suite
checks that claim with schemathesis.
"""

from __future__ import annotations

__all__ = ["openapi_document"]

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.routing import Route

from .. import __version__
from .._models import ChatRequest
from ._documents import ErrorBody, Operation
from ._wire import CONVERSATION_HEADER, CONVERSATION_ID_PATTERN

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from ._app import Gateway

_JSON = "application/json"
_EVENTS = "text/event-stream"
_REF = "#/components/schemas/{name}"
_NULL = {"type": "null"}
_ERRORS = {
    400: "the request is malformed, or asks what its provider cannot serve; "
    "the message names the field",
    401: "missing or wrong API key",
    404: "no such model or resource",
    413: "request body over the server's limit",
    429: "the server is at its concurrency limit",
    502: "the provider failed before its first piece",
}


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=kind.__name__)}


def _operations(routes: Iterable[BaseRoute]) -> list[tuple[Route, str, Operation]]:
    found: list[tuple[Route, str, Operation]] = []
    for route in routes:
        operation = getattr(getattr(route, "endpoint", None), "openapi", None)
        if isinstance(route, Route) and isinstance(operation, Operation):
            found.extend((route, method, operation) for method in sorted(route.methods or ()))
    return [entry for entry in found if entry[1] != "HEAD"]


def _fit_request(schema: dict[str, Any], gateway: Gateway) -> None:
    """Fit the request's schema to this server's models, fields and bounds."""
    schema["description"] = "A chat-completions request, as OpenAI's API takes it."
    properties: dict[str, Any] = schema["properties"]
    default = gateway.providers[gateway.default]
    if not default.accepts_any_model:
        names = set(gateway.providers)
        for name, provider in gateway.providers.items():
            names.update(provider.models)
            names.update(f"{name}/{model}" for model in provider.models)
        properties["model"] = {"anyOf": [{"enum": sorted(names)}, _NULL]}
    for field in list(properties):
        if field == "messages":
            continue
        able = [provider for provider in gateway.providers.values() if provider.serves(field)]
        if not able:
            del properties[field]
            continue
        value = next(branch for branch in properties[field]["anyOf"] if branch != _NULL)
        if value.get("type") not in ("number", "integer"):
            continue
        limits = [provider.fields[field] for provider in able if field in provider.fields]
        lows = [limit.minimum for limit in limits if limit.minimum is not None]
        highs = [limit.maximum for limit in limits if limit.maximum is not None]
        if lows:
            value["minimum"] = max([*lows, value.get("minimum", max(lows))])
        if highs:
            value["maximum"] = min([*highs, value.get("maximum", min(highs))])


def _by_role(message: dict[str, Any]) -> dict[str, Any]:
    """The message schema split by role, to say what the Struct's own check says.

    ``content`` may be null or absent only on an assistant message that calls
    tools, and a tool message needs the ``tool_call_id`` it answers.
    """
    properties = message["properties"]
    content = {"anyOf": [b for b in properties["content"]["anyOf"] if b != _NULL]}
    calls = next(b for b in properties["tool_calls"]["anyOf"] if b != _NULL)

    def branch(roles: list[str], required: list[str], **changed: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {**properties, "role": {"enum": roles}, **changed},
            "required": ["role", *required],
        }

    return {
        "title": "Message",
        "anyOf": [
            branch(["system", "developer", "user", "assistant"], ["content"], content=content),
            branch(["tool"], ["content", "tool_call_id"], content=content,
                   tool_call_id={"type": "string", "minLength": 1}),
            branch(["assistant"], ["tool_calls"], tool_calls={**calls, "minItems": 1}),
        ],
    }  # fmt: skip


def _tags_left_out(kinds: list[type]) -> dict[str, str]:
    """Tagged Structs that decode without their tag, and the tag's field.

    A tag is needed only to tell the Structs of a union apart; a tool's
    ``"type": "function"`` may be left out, as OpenAI's SDKs and msgspec allow.
    """
    from msgspec import inspect

    tagged: dict[str, str] = {}
    in_unions: set[str] = set()
    seen: set[type] = set()

    def walk(info: Any) -> None:
        if isinstance(info, inspect.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            if info.tag_field is not None:
                tagged[info.cls.__name__] = info.tag_field
            for field in info.fields:
                walk(field.type)
        elif isinstance(info, inspect.UnionType):
            structs = [kind for kind in info.types if isinstance(kind, inspect.StructType)]
            if len(structs) > 1:
                in_unions.update(kind.cls.__name__ for kind in structs)
            for kind in info.types:
                walk(kind)
        elif isinstance(info, inspect.ListType):
            walk(info.item_type)
        elif isinstance(info, inspect.DictType):
            walk(info.value_type)

    for info in inspect.multi_type_info(kinds):
        walk(info)
    return {name: field for name, field in tagged.items() if name not in in_unions}


def _events(carried: str) -> dict[str, Any]:
    # The schema describes one event: its data is a JSON object or the [DONE] mark.
    return {
        "schema": {
            "description": carried,
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "string", "pattern": r"^(\[DONE\]|\{.*\})$"},
                "event": {"enum": ["message"]},
            },
        }
    }


def _operation(route: Route, operation: Operation, keyed: bool) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": operation.summary}
    content: dict[str, Any] = {}
    if operation.answer is not None:
        content[_JSON] = {"schema": _ref(operation.answer)}
    if operation.events is not None:
        content[_EVENTS] = _events(operation.events)
    if content:
        ok["content"] = content
    statuses = set(operation.errors)
    if keyed and not operation.public:
        statuses.add(401)
    responses: dict[str, Any] = {"200": ok}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": {_JSON: {"schema": _ref(ErrorBody)}},
        }
    described: dict[str, Any] = {"summary": operation.summary, "responses": responses}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    if operation.conversation:
        parameters.append(
            {
                "name": CONVERSATION_HEADER,
                "in": "header",
                "required": False,
                "description": "the logged conversation this exchange continues",
                "schema": {"type": "string", "pattern": f"^{CONVERSATION_ID_PATTERN}$"},
            }
        )
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _ref(operation.body)}},
        }
    if operation.public and keyed:
        described["security"] = []
    return described


def openapi_document(gateway: Gateway, routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 description of this gateway and its ``routes``, JSON-ready."""
    operations = _operations(routes)
    keyed = gateway.api_key is not None
    kinds: set[type] = {ErrorBody}
    for _, _, operation in operations:
        kinds.update(kind for kind in (operation.body, operation.answer) if kind is not None)
    ordered = sorted(kinds, key=lambda kind: kind.__name__)
    _, schemas = msgspec.json.schema_components(ordered, ref_template=_REF)
    for name, tag in _tags_left_out(ordered).items():
        schemas[name]["required"].remove(tag)
    if ChatRequest.__name__ in schemas:
        _fit_request(schemas[ChatRequest.__name__], gateway)
    if "Message" in schemas:
        schemas["Message"] = _by_role(schemas["Message"])
    paths: dict[str, Any] = {}
    for route, method, operation in operations:
        paths.setdefault(route.path, {})[method.lower()] = _operation(route, operation, keyed)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "chatwire gateway",
            "version": __version__,
            "description": "OpenAI chat completions and the Forefront free-chat protocol "
            "in front of chatwire providers: " + ", ".join(gateway.providers),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if keyed:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
