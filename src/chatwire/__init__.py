"""chatwire: stream chat completions from pluggable providers.

    import chatwire
    text = chatwire.ChatCompletion.create(messages=[{"role": "user", "content": "Hi"}])
    for piece in chatwire.ChatCompletion.create(messages=..., stream=True):
        print(piece, end="")

    with chatwire.Client(timeout=30) as client:  # pools and defaults of its own
        text = client.create(messages=..., provider="openai")

Public names load on first use, so ``import chatwire`` (and so the
``chatwire`` command's start-up) costs almost nothing until they are needed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The error classes are small and import nothing heavy: load them now.
from ._errors import (
    AllProvidersFailed,
    ChatwireError,
    ContextLengthExceeded,
    InvalidRequest,
    ProtocolError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
    StreamInterrupted,
)

if TYPE_CHECKING:
    from . import providers
    from ._client import ChatCompletion, Client
    from ._stream import AsyncStream, Completion, Stream

__all__ = [
    "AllProvidersFailed",
    "AsyncStream",
    "ChatCompletion",
    "ChatwireError",
    "Client",
    "Completion",
    "ContextLengthExceeded",
    "InvalidRequest",
    "ProtocolError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderTimeout",
    "ProviderUnreachable",
    "Stream",
    "StreamInterrupted",
    "__version__",
    "providers",
]

# Where each name loaded on first use lives; ``None``: the name is that submodule.
_HOMES: dict[str, tuple[str, str | None]] = {
    "ChatCompletion": ("._client", "ChatCompletion"),
    "Client": ("._client", "Client"),
    "Stream": ("._stream", "Stream"),
    "Completion": ("._stream", "Completion"),
    "AsyncStream": ("._stream", "AsyncStream"),
    "providers": (".providers", None),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = import_module(home[0], __name__)
    value = module if home[1] is None else getattr(module, home[1])
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
