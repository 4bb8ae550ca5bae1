"""The chat-completions request, typed once: msgspec Structs for all a client may send.

A request is decoded from JSON (the gateway) or converted from Python values
(the library) in one pass, by msgspec's C decoder, and is checked as it is
built; the layers below take the typed request and check nothing again.
What the Structs say is what OpenAI's API says today:

- messages with roles ``system``, ``developer``, ``user``, ``assistant`` and
  ``tool``; ``content`` a string, a list of ``text`` and ``image_url`` parts,
  or null on an assistant message that calls tools; ``name``,
  ``tool_calls``, ``tool_call_id``;
- ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``response_format``
  (``text``, ``json_object``, ``json_schema``);
- sampling: ``temperature``, ``top_p``, ``max_tokens``,
  ``max_completion_tokens``, ``stop``, ``seed``, ``presence_penalty``,
  ``frequency_penalty``, ``n`` (1 only), ``user``; ``stream`` and
  ``stream_options``.

Unknown top-level fields are ignored, as vLLM and llama.cpp's server do; a
known field with a wrong type or value is an ``InvalidRequest`` whose text
starts with the field's path as OpenAI writes it (``messages[2].content[0].type``).
Limits that depend on the provider (a temperature range, a model name) are
the provider's to check. Encoding a request gives back the fields that were
set and nothing else.
"""

from __future__ import annotations

__all__ = [
    "FUNCTION_NAME_PATTERN",
    "REQUEST_FIELDS",
    "UNSERVED_FIELDS",
    "ChatRequest",
    "ContentPart",
    "FunctionCall",
    "FunctionDefinition",
    "ImagePart",
    "ImageURL",
    "JsonObjectFormat",
    "JsonSchema",
    "JsonSchemaFormat",
    "Message",
    "NamedFunction",
    "NamedToolChoice",
    "ResponseFormat",
    "StreamOptions",
    "TextFormat",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "decode_request",
    "fields_from_text",
    "merge_tool_calls",
    "request_from",
]

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ._errors import InvalidRequest

# -- messages -------------------------------------------------------------------------


class TextPart(Struct, tag_field="type", tag="text"):
    text: str


class ImageURL(Struct, omit_defaults=True):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(Struct, tag_field="type", tag="image_url"):
    image_url: ImageURL


ContentPart = TextPart | ImagePart


class FunctionCall(Struct):
    name: str
    arguments: str  # JSON text, as the model wrote it


class ToolCall(Struct, tag_field="type", tag="function"):
    id: str
    function: FunctionCall


Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(Struct, omit_defaults=True):
    role: Role
    # UNSET (absent) and None (null) differ: each is sent on as it came.
    content: str | list[ContentPart] | UnsetType | None = UNSET
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        # Raised here, msgspec reports the error at this message's path. What a
        # provider cannot take (an image, a tool call) is the provider's to refuse.
        if self.content in (None, UNSET) and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(
                "`content` is required (it may be null only on an assistant message "
                "with `tool_calls`)"
            )
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the `tool_call_id` it answers")

    @property
    def text(self) -> str:
        """The message's text: its string, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        if not isinstance(self.content, list):
            return ""
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


# -- tools and formats ----------------------------------------------------------------

FUNCTION_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
FunctionName = Annotated[str, Meta(pattern=FUNCTION_NAME_PATTERN)]


class FunctionDefinition(Struct, omit_defaults=True):
    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class Tool(Struct, tag_field="type", tag="function"):
    function: FunctionDefinition


class NamedFunction(Struct):
    name: FunctionName


class NamedToolChoice(Struct, tag_field="type", tag="function"):
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class TextFormat(Struct, tag_field="type", tag="text"):
    pass


class JsonObjectFormat(Struct, tag_field="type", tag="json_object"):
    pass


class JsonSchema(Struct, omit_defaults=True):
    name: FunctionName
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class JsonSchemaFormat(Struct, tag_field="type", tag="json_schema"):
    json_schema: JsonSchema


ResponseFormat = TextFormat | JsonObjectFormat | JsonSchemaFormat


class StreamOptions(Struct, omit_defaults=True):
    include_usage: bool | None = None


class ToolCallDelta(Struct):
    """A piece of a tool call as an answer streams it: OpenAI's ``delta.tool_calls[i]``.

    The first piece of a call carries its ``id`` and ``name``; the arguments
    (JSON text) come in ``arguments`` pieces, in order, under the same ``index``.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


def merge_tool_calls(calls: list[dict[str, Any]], delta: ToolCallDelta) -> None:
    """Add ``delta`` to ``calls``, the whole calls so far in OpenAI's message form."""
    while len(calls) <= delta.index:
        calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    call = calls[delta.index]
    if delta.id:
        call["id"] = delta.id
    if delta.name:
        call["function"]["name"] += delta.name
    call["function"]["arguments"] += delta.arguments


# -- the request ----------------------------------------------------------------------

# OpenAI's deprecated function calling: refused, never dropped.
UNSERVED_FIELDS = ("functions", "function_call")

Penalty = Annotated[float, Meta(ge=-2.0, le=2.0)]
Tokens = Annotated[int, Meta(ge=1)]


class ChatRequest(Struct, kw_only=True, omit_defaults=True, dict=True):
    """A whole chat-completions request; only ``messages`` is required.

    A request built by ``request_from`` or ``decode_request`` also keeps the
    fields exactly as they were sent (``as_sent``), so an upstream that takes
    the OpenAI API receives them untouched, extensions inside messages too.
    """

    messages: Annotated[list[Message], Meta(min_length=1)]
    model: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: Annotated[float, Meta(ge=0.0)] | None = None
    top_p: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    max_tokens: Tokens | None = None
    max_completion_tokens: Tokens | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    # More than one choice is not served: each provider streams one answer.
    n: Annotated[int, Meta(ge=1, le=1)] | None = None
    user: str | None = None
    # OpenAI's deprecated function calling: declared to be refused, never dropped.
    functions: Any = None
    function_call: Any = None

    def __post_init__(self) -> None:
        for name in UNSERVED_FIELDS:
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: the deprecated functions API is not served; send tools")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def as_sent(self) -> dict[str, Any]:
        """The request's fields as the client wrote them (the typed ones if it kept none)."""
        kept = self.__dict__
        sent: dict[str, Any] | None = kept.get("_sent")
        if sent is None:
            body = kept.get("_body")
            # Decoded from JSON text: read it again, once, only when asked.
            if body is None:
                sent = msgspec.to_builtins(self)
            else:
                sent = {**msgspec.json.decode(body), **kept.get("_changes", {})}
            kept["_sent"] = sent
        return sent

    def set_fields(self) -> Iterator[tuple[str, Any]]:
        """The optional fields this request sets (not null), with their values."""
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                yield name, value

    def replace(self, **changes: Any) -> ChatRequest:
        """A copy with ``changes``, keeping what was sent (with the changes)."""
        changed = msgspec.structs.replace(self, **changes)
        kept = self.__dict__
        if "_sent" in kept:
            changed.__dict__["_sent"] = {**kept["_sent"], **changes}
        elif "_body" in kept:
            changed.__dict__["_body"] = kept["_body"]
            changed.__dict__["_changes"] = {**kept.get("_changes", {}), **changes}
        return changed


REQUEST_FIELDS = frozenset(ChatRequest.__struct_fields__)
_OPTIONAL_FIELDS = tuple(name for name in ChatRequest.__struct_fields__ if name != "messages")
_WHOLE_NUMBER_FIELDS = ("max_tokens", "max_completion_tokens", "seed", "n")
_decoder = msgspec.json.Decoder(ChatRequest)


# "Expected `int`, got `str` - at `$.messages[0].content`": the message, then the path.
_NAMED = re.compile(r"^[a-z_]+: ")
_AT_PATH = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _invalid(error: msgspec.MsgspecError, field: str = "") -> InvalidRequest:
    """msgspec's error, with the field's path first, as OpenAI writes it.

    ``field`` names what was converted when it is one field of a request.
    """
    found = _AT_PATH.match(str(error))
    what, path = (found["what"], found["path"]) if found else (str(error), None)
    # "Expected ..." reads on after the path as "expected ..."; "JSON ..." stays.
    if what[1:2].islower():
        what = what[:1].lower() + what[1:]
    if field:
        return InvalidRequest(f"{field}{path or ''}: {what}")
    if not path:
        # A check across fields names its field itself ("tool_choice: ...").
        return InvalidRequest(what if _NAMED.match(what) else f"request: {what}")
    return InvalidRequest(f"{path.lstrip('.')}: {what}")


def decode_request(body: bytes | str) -> ChatRequest:
    """A request from its JSON text, checked; ``InvalidRequest`` names what is wrong.

    The text is decoded straight into the Structs; it is kept, and read as
    plain JSON again only if someone asks for the request as sent.
    """
    try:
        request = _decoder.decode(body)
    except msgspec.DecodeError:
        # Refused, or 5.0 given for an integer: go the slow way, which accepts
        # the one and names what is wrong with the other.
        try:
            fields = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"request: the body is not valid JSON ({exc})") from None
        if not isinstance(fields, dict):
            raise InvalidRequest("request: the body must be a JSON object") from None
        return request_from(fields)
    request.__dict__["_body"] = body
    return request


def request_from(fields: dict[str, Any]) -> ChatRequest:
    """A request from Python values (what ``create`` was given), checked the same way.

    ``fields`` is kept as the request as sent; it must not change afterwards.
    """
    if "messages" not in fields:
        raise InvalidRequest("messages: this field is required")
    typed = fields
    for name in _WHOLE_NUMBER_FIELDS:
        value = fields.get(name)
        # JSON has one kind of number: 5.0 is the integer 5, as JSON Schema says.
        if value.__class__ is float and value.is_integer():
            typed = {**typed, name: int(value)}
    try:
        request = msgspec.convert(typed, ChatRequest)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    request.__dict__["_sent"] = fields
    return request


def fields_from_text(fields: dict[str, Any]) -> dict[str, Any]:
    """Request fields given as text (a command line's ``-o name=value``) as their values.

    ``tools``, ``response_format`` and a ``tool_choice`` object are read as JSON;
    numbers and flags are parsed; anything else is left for ``request_from``.
    """
    converted = dict(fields)
    for name, value in fields.items():
        kind = _FIELD_TYPES.get(name)
        if kind is None or not isinstance(value, str):
            continue
        if name in _JSON_FIELDS and not (name == "tool_choice" and not value.startswith("{")):
            try:
                converted[name] = msgspec.json.decode(value)
            except msgspec.DecodeError as exc:
                raise _invalid(exc, name) from None
            continue
        try:
            typed = msgspec.convert(value, kind, strict=False)
        except msgspec.ValidationError as exc:
            said = str(_invalid(exc, name))
            raise InvalidRequest(said.replace("got `str`", f"got {value!r}")) from None
        converted[name] = msgspec.to_builtins(typed)
    return converted


_FIELD_TYPES: dict[str, Any] = {
    field.name: field.type for field in msgspec.structs.fields(ChatRequest)
}
_JSON_FIELDS = ("tools", "response_format", "tool_choice", "stream_options")
