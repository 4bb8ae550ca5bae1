"""chatwire: stream chat completions from pluggable providers.

import chatwire
text = chatwire.ChatCompletion.create(messages=[{"role": "user", "content": "Hi"}])
for piece in chatwire.ChatCompletion.create(messages=..., stream=True):
    print(piece, end="")
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import providers
from ._client import ChatCompletion
from ._errors import (
    AllProvidersFailed,
    ChatwireError,
    InvalidRequest,
    ProtocolError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
    StreamInterrupted,
)
from ._stream import AsyncStream, Stream

__all__ = [
    "AllProvidersFailed",
    "AsyncStream",
    "ChatCompletion",
    "ChatwireError",
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
