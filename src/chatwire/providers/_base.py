"""What every provider module shares: the ``params`` string, input checks, messages.

A provider says which messages it takes by a module attribute:
``forwards_messages = True`` (an OpenAI-compatible upstream) gets them exactly
as the caller wrote them; any other provider, the seed's contract, gets
``{"role", "content"}`` dicts of text. For those, text parts are joined, the
``developer`` role becomes ``system``, and what the provider cannot take is
refused before any I/O, naming the message and the provider: an image part,
and a tool call or tool result unless ``tool_turns_as_text = True`` lets the
provider read them as text (the embedded model does).
"""

from __future__ import annotations

__all__ = ["describe_params", "prepare", "provider_messages", "short_name"]

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, get_type_hints

from .._errors import InvalidRequest
from .._validate import check_messages, check_model, check_options

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from typing import Protocol

    from .._models import Message
    from .._validate import Option

    class ProviderModule(Protocol):
        """The seed's module contract, plus chatwire's additions."""

        __name__: str
        url: str
        model: list[str]
        supports_stream: bool
        needs_auth: bool
        working: bool
        params: str
        options: Mapping[str, Option]
        accepts_any_model: bool

        def _create_completion(
            self, model: str, messages: list[Any], stream: bool, **kwargs: Any
        ) -> Iterator[str]: ...

        def _create_async_completion(
            self, model: str, messages: list[Any], stream: bool, **kwargs: Any
        ) -> AsyncIterator[str]: ...


def short_name(module_name: str) -> str:
    return module_name.rpartition(".")[2]


def describe_params(module_name: str, function: Callable[..., object]) -> str:
    """The seed's ``params`` line, computed from the signature and type hints."""
    code = function.__code__
    hints = get_type_hints(function)
    names = code.co_varnames[: code.co_argcount]
    described = ", ".join(f"{name}: {hints[name].__name__}" for name in names)
    return f"chatwire.providers.{short_name(module_name)} supports: ({described})"


def prepare(
    provider: ModuleType | ProviderModule,
    model: object,
    messages: object,
    options: Mapping[str, object],
    typed: list[Message] | None = None,
) -> tuple[str, list[Any], dict[str, Any]]:
    """Check a request against a provider before any I/O; return it as the provider takes it.

    ``typed`` is ``messages`` already checked, when the caller has them.
    """
    name = short_name(provider.__name__)
    if typed is None:
        typed = check_messages(messages)
    assert isinstance(messages, (list, tuple))  # check_messages said so
    checked_messages = provider_messages(provider, list(messages), typed)
    checked_model = check_model(
        name, model, provider.model, getattr(provider, "accepts_any_model", False)
    )
    checked_options = check_options(name, options, getattr(provider, "options", {}))
    return checked_model, checked_messages, checked_options


def provider_messages(
    provider: ModuleType | ProviderModule, raw: list[Any], typed: list[Message]
) -> list[Any]:
    """The messages in the shape ``provider`` takes (see the module docstring)."""
    if getattr(provider, "forwards_messages", False):
        return raw
    name = short_name(provider.__name__)
    as_text = getattr(provider, "tool_turns_as_text", False)
    return [
        _text_message(name, index, original, message, as_text)
        for index, (original, message) in enumerate(zip(raw, typed, strict=True))
    ]


_SEED_ROLES = ("system", "user", "assistant")


def _text_message(
    provider: str, index: int, original: Any, message: Message, tool_turns_as_text: bool
) -> Any:
    from .._models import ImagePart

    where = f"messages[{index}]"
    plain = (
        message.role in _SEED_ROLES and isinstance(message.content, str)
        and message.tool_calls is None and message.tool_call_id is None
    )  # fmt: skip
    if plain:
        return original  # what the seed's providers always took, untouched
    if isinstance(message.content, list):
        for position, part in enumerate(message.content):
            if isinstance(part, ImagePart):
                raise InvalidRequest(
                    f"{where}.content[{position}]: provider {provider!r} cannot read images"
                )
    text = message.text
    role = "system" if message.role == "developer" else message.role
    if message.role == "tool" or message.tool_calls:
        if not tool_turns_as_text:
            field = "role" if message.role == "tool" else "tool_calls"
            raise InvalidRequest(f"{where}.{field}: provider {provider!r} cannot call tools")
        if message.role == "tool":
            role, text = "user", f"[result of tool call {message.tool_call_id}]\n{text}"
        else:
            calls = "\n".join(
                f"[tool call {call.id}: {call.function.name}({call.function.arguments})]"
                for call in message.tool_calls or ()
            )
            text = f"{text}\n{calls}" if text else calls
    rendered: dict[str, Any] = {"role": role, "content": text}
    if message.name is not None:
        rendered["name"] = message.name
    return rendered
