"""What every provider module shares: the ``params`` string and input checks."""

from __future__ import annotations

__all__ = ["describe_params", "prepare", "short_name"]

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, get_type_hints

from .._validate import check_messages, check_model, check_options

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from typing import Protocol

    from .._types import Message
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
) -> tuple[str, list[Message], dict[str, Any]]:
    """Check a request against a provider before any I/O; return it typed."""
    name = short_name(provider.__name__)
    checked_messages = check_messages(messages)
    checked_model = check_model(
        name, model, provider.model, getattr(provider, "accepts_any_model", False)
    )
    checked_options = check_options(name, options, getattr(provider, "options", {}))
    return checked_model, checked_messages, checked_options
