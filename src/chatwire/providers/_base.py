"""The provider class: what a provider can do, and how it answers a typed request.

A provider declares its capabilities as class attributes (streaming, tools,
images, structured output), the optional request fields it serves with its
own bounds (``fields``), and the keywords of its own (``options``: a base
URL, a key, timeouts, a model file). ``check`` holds a request against all of
that before any I/O and refuses what the provider cannot serve, naming the
field and the provider; ``stream`` and ``astream`` then run the checked
request and check nothing again.

Providers that take the seed's messages (``{"role", "content"}`` text dicts)
get them from ``text_messages``: text parts joined, ``developer`` as
``system``, and tool calls and results written out as text for a provider
that reads them so (the embedded model).

A plugin written as a module in the seed's style is served through
``ModuleProvider``, which calls its ``_create_completion``.
"""

from __future__ import annotations

__all__ = [
    "ModuleProvider",
    "Provider",
    "checked_call",
    "describe_params",
    "in_thread",
    "seed_functions",
    "short_name",
    "split_request",
    "text_messages",
]

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, get_type_hints

from .._errors import InvalidRequest
from .._validate import Option, check_model, check_options

if TYPE_CHECKING:
    from .._models import ChatRequest, Message
    from .._transport import Transport

# Fields every provider serves: the request itself, or settled before it (n is 1).
_UNIVERSAL = frozenset({"model", "stream", "stream_options", "n"})
_TOOL_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})


def short_name(module_name: str) -> str:
    return module_name.rpartition(".")[2]


def describe_params(module_name: str, function: Callable[..., object]) -> str:
    """The seed's ``params`` line, computed from the signature and type hints."""
    code = function.__code__
    hints = get_type_hints(function)
    names = code.co_varnames[: code.co_argcount]
    described = ", ".join(f"{name}: {hints[name].__name__}" for name in names)
    return f"chatwire.providers.{short_name(module_name)} supports: ({described})"


class Provider:
    """One provider: capabilities, fields served, and the exchange itself."""

    name: ClassVar[str]
    url: ClassVar[str]
    # Model names it offers, the default first.
    models: ClassVar[tuple[str, ...]] = ()
    accepts_any_model: ClassVar[bool] = False
    needs_auth: ClassVar[bool] = False
    supports_stream: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = False
    supports_images: ClassVar[bool] = False
    supports_structured_output: ClassVar[bool] = False
    # Tool calls and results in the history are read as text (without calling tools).
    reads_tool_turns_as_text: ClassVar[bool] = False
    # The optional request fields served beyond those every provider serves.
    fields: ClassVar[Mapping[str, Option]] = {}
    options: ClassVar[Mapping[str, Option]] = {}

    @property
    def working(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<chatwire provider {self.name!r}>"

    def check(self, request: ChatRequest, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The model to ask and the options checked, if this provider can serve ``request``.

        Raises ``InvalidRequest`` naming the field and the provider otherwise.
        """
        for name, value in request.set_fields():
            if name not in _UNIVERSAL:
                self._check_field(name, value)
        self._check_messages(request.messages)
        model = check_model(self.name, request.model, self.models, self.accepts_any_model)
        checked = check_options(self.name, options, self.options)
        return model, self.check_request(request, checked)

    def check_request(self, request: ChatRequest, options: dict[str, Any]) -> dict[str, Any]:
        """Refuse what else this provider cannot serve; the options as it will use them.

        A provider settles here, once, what it would otherwise work out on every
        attempt (a URL and key from the environment, a model file), and ``stream``
        takes the result. By default: nothing more to refuse, the options as given.
        """
        return options

    def serves(self, name: str) -> bool:
        """Whether this provider takes the optional request field ``name`` at all.

        ``response_format`` always: its ``text`` kind asks for nothing more.
        """
        if name in _TOOL_FIELDS:
            return self.supports_tools
        return name == "response_format" or name in _UNIVERSAL or name in self.fields

    def _check_field(self, name: str, value: Any) -> None:
        if not self.serves(name):
            why = "cannot call tools" if name in _TOOL_FIELDS else "cannot serve it"
            raise InvalidRequest(f"{name}: provider {self.name!r} {why}")
        if name == "response_format":
            from .._models import TextFormat

            if not isinstance(value, TextFormat) and not self.supports_structured_output:
                raise InvalidRequest(
                    f"response_format: provider {self.name!r} cannot give structured output"
                )
            return
        served = self.fields.get(name)
        if served is not None and not isinstance(value, (str, list)):
            served.within(self.name, value)

    def _check_messages(self, messages: list[Message]) -> None:
        if self.supports_images and (self.supports_tools or self.reads_tool_turns_as_text):
            return
        from .._models import ImagePart

        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if isinstance(message.content, list) and not self.supports_images:
                for position, part in enumerate(message.content):
                    if isinstance(part, ImagePart):
                        raise InvalidRequest(
                            f"{where}.content[{position}]: provider {self.name!r} "
                            "cannot read images"
                        )
            if self.supports_tools or self.reads_tool_turns_as_text:
                continue
            if message.role == "tool" or message.tool_calls:
                field = "role" if message.role == "tool" else "tool_calls"
                raise InvalidRequest(f"{where}.{field}: provider {self.name!r} cannot call tools")

    def stream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> Any:
        """The answer's pieces (text, tool-call deltas) with its ``meta``; a ``Reply``.

        A provider that speaks HTTP does it over ``transport`` (the client's
        connection pools; the process's shared ones when ``None``).
        """
        raise NotImplementedError

    def astream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> Any:
        """The async twin of ``stream``; by default ``stream`` run on a worker thread."""
        from ._reply import AsyncReply

        reply = self.stream(request, model, options, transport)
        return AsyncReply(in_thread(iter(reply)), getattr(reply, "meta", {}))


def split_request(
    model: object, messages: object, stream: bool, keywords: Mapping[str, Any]
) -> tuple[ChatRequest, dict[str, Any]]:
    """The typed request in a call's arguments, and the keywords that are options.

    This is the library's edge: the request is checked here, once.
    """
    from .._models import REQUEST_FIELDS, request_from

    fields: dict[str, Any] = {"messages": messages}
    options: dict[str, Any] = {}
    for name, value in keywords.items():
        if name in REQUEST_FIELDS:
            fields[name] = value
        else:
            options[name] = value
    if model is not None:
        fields["model"] = model
    if isinstance(messages, tuple):
        fields["messages"] = list(messages)
    fields["stream"] = bool(stream)
    return request_from(fields), options


def checked_call(
    provider: Provider, model: object, messages: object, stream: bool, keywords: Mapping[str, Any]
) -> tuple[ChatRequest, str, dict[str, Any]]:
    """A seed-style call (``_create_completion``'s arguments) as ``stream``'s, checked."""
    request, options = split_request(model, messages, stream, keywords)
    return (request, *provider.check(request, options))


def seed_functions(provider: Provider) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """``_create_completion`` and its async twin for a built-in provider's module face."""

    def _create_completion(model: str, messages: list, stream: bool, **kwargs: Any) -> Any:  # type: ignore[type-arg]
        """Yield the answer's text as it arrives (its tool-call deltas too), in order."""
        return provider.stream(*checked_call(provider, model, messages, stream, kwargs))

    def _create_async_completion(
        model: str,
        messages: list,  # type: ignore[type-arg]
        stream: bool,
        **kwargs: Any,
    ) -> Any:
        """The async twin of ``_create_completion``."""
        return provider.astream(*checked_call(provider, model, messages, stream, kwargs))

    return _create_completion, _create_async_completion


_SEED_ROLES = ("system", "user", "assistant")


def text_messages(request: ChatRequest) -> list[Any]:
    """The messages as the seed's providers take them: ``{"role", "content"}`` text.

    A plain message goes as the caller wrote it. ``check`` has refused what
    the provider cannot read; tool turns left here are written out as text.
    """
    sent = request.as_sent()["messages"]
    return [
        _text_message(original, message)
        for original, message in zip(sent, request.messages, strict=True)
    ]


def _text_message(original: Any, message: Message) -> Any:
    plain = (
        message.role in _SEED_ROLES and isinstance(message.content, str)
        and message.tool_calls is None and message.tool_call_id is None
    )  # fmt: skip
    if plain:
        return original
    text = message.text
    role = "system" if message.role == "developer" else message.role
    if message.role == "tool":
        role, text = "user", f"[result of tool call {message.tool_call_id}]\n{text}"
    elif message.tool_calls:
        calls = "\n".join(
            f"[tool call {call.id}: {call.function.name}({call.function.arguments})]"
            for call in message.tool_calls
        )
        text = f"{text}\n{calls}" if text else calls
    rendered: dict[str, Any] = {"role": role, "content": text}
    if message.name is not None:
        rendered["name"] = message.name
    return rendered


async def in_thread(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    """Drive a sync iterator from async code without blocking the event loop.

    Cancelled while the thread is inside ``next``, it waits for that call to
    return before closing the iterator (a generator cannot be closed while it
    runs), then lets the cancellation go on.
    """
    import asyncio

    done = object()
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            step = asyncio.ensure_future(asyncio.to_thread(next, iterator, done))
            piece = await asyncio.shield(step)
            step = None
            if piece is done:
                return
            yield piece
    finally:
        if step is not None:
            with contextlib.suppress(BaseException):
                await step
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


class ModuleProvider(Provider):
    """A provider written as a module in the seed's style, served as a ``Provider``.

    It takes text messages. The module's ``options`` that are request fields
    (``temperature``, ...) are the fields it serves; the rest are its own
    keywords. Both reach ``_create_completion`` as keyword arguments.
    """

    def __init__(self, module: ModuleType, name: str | None = None) -> None:
        from .._models import REQUEST_FIELDS

        self.module = module
        self.name = name or short_name(module.__name__)  # type: ignore[misc]
        self.url = getattr(module, "url", "")  # type: ignore[misc]
        self.models = tuple(module.model)  # type: ignore[misc]
        self.accepts_any_model = bool(getattr(module, "accepts_any_model", False))  # type: ignore[misc]
        self.needs_auth = bool(module.needs_auth)  # type: ignore[misc]
        self.supports_stream = bool(module.supports_stream)  # type: ignore[misc]
        declared: Mapping[str, Option] = getattr(module, "options", {})
        self.fields = {k: v for k, v in declared.items() if k in REQUEST_FIELDS}  # type: ignore[misc]
        self.options = {k: v for k, v in declared.items() if k not in REQUEST_FIELDS}  # type: ignore[misc]

    @property
    def working(self) -> bool:
        return bool(getattr(self.module, "working", True))

    def _arguments(
        self, request: ChatRequest, model: str, options: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        keywords = {name: value for name, value in request.set_fields() if name in self.fields}
        keywords.update(options)
        return (model, text_messages(request), bool(request.stream)), keywords

    def stream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> Any:
        arguments, keywords = self._arguments(request, model, options)
        return self.module._create_completion(*arguments, **keywords)

    def astream(
        self,
        request: ChatRequest,
        model: str,
        options: Mapping[str, Any],
        transport: Transport | None = None,
    ) -> Any:
        create = getattr(self.module, "_create_async_completion", None)
        if create is None:
            return super().astream(request, model, options, transport)
        arguments, keywords = self._arguments(request, model, options)
        return create(*arguments, **keywords)
