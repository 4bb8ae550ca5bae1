"""The one exception tree of chatwire.

Every error chatwire raises on purpose derives from ``ChatwireError``::

    ChatwireError
    ├── InvalidRequest          bad input, raised before any network I/O;
    │   │                       names the message index and field, the
    │   │                       option, the model or the provider at fault
    │   └── ContextLengthExceeded  the prompt does not fit the model's
    │                           context; ``.prompt_tokens``, ``.limit``
    ├── AllProvidersFailed      every provider of a fallback list failed
    │                           before any text; ``.errors`` pairs each
    │                           provider's name with its own error
    └── ProviderError           a provider failed; carries ``.provider``,
        │                       ``.url`` and ``.partial`` (text already
        │                       received, "" when none)
        ├── ProviderUnreachable the connection could not be made
        ├── ProviderTimeout     connect timed out, or nothing useful arrived
        │                       within the read timeout before any text
        ├── ProviderHTTPError   the server answered an error status;
        │                       ``.status_code``, ``.body`` (first ~500
        │                       bytes), ``.retry_after`` when sent
        ├── ProtocolError       the server sent something that is not the
        │                       protocol (``.line`` names it)
        └── StreamInterrupted   the stream broke after it began; ``.partial``
                                holds every piece of text received

``InvalidRequest`` is also a ``ValueError`` so that generic callers that
catch ``ValueError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "AllProvidersFailed",
    "ChatwireError",
    "ContextLengthExceeded",
    "InvalidRequest",
    "ProtocolError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderTimeout",
    "ProviderUnreachable",
    "StreamInterrupted",
]


class ChatwireError(Exception):
    """Root of every error chatwire raises on purpose."""


class InvalidRequest(ChatwireError, ValueError):
    """The request is malformed; nothing was sent."""


class ContextLengthExceeded(InvalidRequest):
    """The conversation is longer than the model's context window."""

    def __init__(self, prompt_tokens: int, limit: int, *, hint: str = "") -> None:
        self.prompt_tokens = prompt_tokens
        self.limit = limit
        super().__init__(
            f"messages: the prompt is {prompt_tokens} tokens, over the model's context "
            f"limit of {limit} tokens{hint}"
        )


class AllProvidersFailed(ChatwireError):
    """Every provider tried failed before yielding any text."""

    def __init__(self, errors: list[tuple[str, ProviderError]]) -> None:
        self.errors = errors
        reasons = "; ".join(f"{name}: {error}" for name, error in errors)
        super().__init__(f"all {len(errors)} providers failed: {reasons}")


class ProviderError(ChatwireError):
    """A provider failed to produce a complete answer.

    ``provider`` and ``url`` may be filled in after construction by the layer
    that knows them (the SSE decoder raises ``ProtocolError`` without them).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        url: str | None = None,
        partial: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.url = url
        self.partial = partial
        # Decoded just before the failure in the same batch, not yet handed on:
        # the layer above passes these on first, so no text is lost.
        self.before: list[str] = []

    def __str__(self) -> str:
        where = [part for part in (self.provider, self.url) if part]
        prefix = f"[{' '.join(where)}] " if where else ""
        return prefix + self.message


class ProviderUnreachable(ProviderError):
    """The connection to the provider could not be made."""


class ProviderTimeout(ProviderError):
    """The provider did not connect, or stayed silent, within the timeout."""


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        retry_after: float | None = None,
        provider: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, url=url)
        self.status_code = status_code
        self.body = body
        self.retry_after = retry_after


class ProtocolError(ProviderError):
    """The provider sent a malformed event; ``line`` shows it (truncated)."""

    def __init__(
        self,
        message: str,
        *,
        line: str = "",
        provider: str | None = None,
        url: str | None = None,
        partial: str = "",
    ) -> None:
        super().__init__(message, provider=provider, url=url, partial=partial)
        self.line = line


class StreamInterrupted(ProviderError):
    """The stream broke after it started; ``partial`` holds the text so far."""
