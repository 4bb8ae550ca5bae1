"""``ChatCompletion.create`` and ``acreate``: resolve, validate, dispatch.

Both check everything they can (messages, model, options) before any I/O.
With ``stream=True`` they hand back a ``Stream`` / ``AsyncStream`` of text
pieces that closes its connection on ``close()``/``aclose()``, on leaving a
``with`` block, on ``break`` (once the stream is dropped) and on task
cancellation. With ``stream=False`` they return the whole text.
"""

from __future__ import annotations

__all__ = ["ChatCompletion", "open_async", "open_sync"]

from typing import TYPE_CHECKING, Any, Literal, overload

from . import providers
from ._errors import InvalidRequest
from ._fallback import DEFAULT_MAX_RETRIES, AsyncFallbackReply, FallbackReply, Plan, make_plans
from ._stream import AsyncStream, Completion, Stream
from ._validate import Option
from .providers._base import split_request

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType
    from typing import TypeAlias

    from ._models import ChatRequest
    from .providers import Provider
    from .store import Recorder, Store

    # A provider, its name, several of either (tried in order), or None (the default).
    ProviderSpec: TypeAlias = (
        str | ModuleType | Provider | Sequence[str | ModuleType | Provider] | None
    )


def _recorder(
    log: bool,
    store: Store | None,
    conversation_id: str | None,
    provider: str,
    model: str,
    messages: list[Any],
) -> tuple[Recorder | None, str | None]:
    """A recorder for this exchange when the caller asked for a log."""
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise InvalidRequest("conversation_id must be a string")
    if not log and store is None:
        return None, conversation_id
    from .store import Exchange, Recorder, Store, new_conversation_id

    if store is not None and not isinstance(store, Store):
        raise InvalidRequest(f"store must be a chatwire.store.Store, got {type(store).__name__}")
    cid = conversation_id or new_conversation_id()
    exchange = Exchange(cid, provider, model, [dict(m) for m in messages])
    return Recorder(store or _default_store(), exchange), cid


_stores: dict[str, Store] = {}


def _default_store() -> Store:
    from .store import Store, default_path

    path = str(default_path())
    if path not in _stores:
        _stores[path] = Store(path)
    return _stores[path]


_OWN_KEYWORDS = ("log", "store", "conversation_id", "max_retries")
_MAX_RETRIES = Option("max_retries", int, "a whole number", minimum=0)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate chatwire's own keywords (logging, retries) from the providers' options."""
    ours = {name: options.pop(name) for name in _OWN_KEYWORDS if name in options}
    retries = ours.get("max_retries")
    ours["max_retries"] = DEFAULT_MAX_RETRIES if retries is None else _MAX_RETRIES.coerce(retries)
    return ours, options


def _prepared(
    targets: list[Provider], request: ChatRequest, keywords: dict[str, Any]
) -> tuple[list[Plan], dict[str, Any], Recorder | None, str | None]:
    ours, options = _split(keywords)
    plans = make_plans(targets, request, options)
    first = plans[0]
    recorder, cid = _recorder(
        bool(ours.get("log")), ours.get("store"), ours.get("conversation_id"),
        first.name, first.model, request.as_sent()["messages"],
    )  # fmt: skip
    return plans, ours, recorder, cid


def open_sync(targets: list[Provider], request: ChatRequest, keywords: dict[str, Any]) -> Stream:
    """A stream of the answer to a typed request from the first of ``targets`` that answers.

    ``keywords`` are the providers' options and chatwire's own (``log``,
    ``store``, ``conversation_id``, ``max_retries``).
    """
    plans, ours, recorder, cid = _prepared(targets, request, keywords)
    reply = FallbackReply(plans, ours["max_retries"])
    return Stream(reply, reply.provider, reply.model, recorder, cid)


def open_async(
    targets: list[Provider], request: ChatRequest, keywords: dict[str, Any]
) -> AsyncStream:
    """The async twin of ``open_sync``."""
    plans, ours, recorder, cid = _prepared(targets, request, keywords)
    reply = AsyncFallbackReply(plans, ours["max_retries"])
    return AsyncStream(reply, reply.provider, reply.model, recorder, cid)


def _open_sync(
    provider: object, model: str | None, messages: object, stream: bool, kwargs: dict[str, Any]
) -> Stream:
    request, keywords = split_request(model, messages, stream, kwargs)
    return open_sync(providers.resolve_all(provider), request, keywords)


def _open_async(
    provider: object, model: str | None, messages: object, stream: bool, kwargs: dict[str, Any]
) -> AsyncStream:
    request, keywords = split_request(model, messages, stream, kwargs)
    return open_async(providers.resolve_all(provider), request, keywords)


class ChatCompletion:
    """The unified entry point, in the shape of the seed's ecosystem."""

    @overload
    @staticmethod
    def create(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @staticmethod
    def create(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> Stream: ...

    @staticmethod
    def create(
        model: str | None = None,
        messages: list[Any] | None = None,
        provider: ProviderSpec = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | Stream:
        """Ask ``provider`` (default: the registry's default) for a completion.

        Returns the whole text (a ``Completion``: a ``str`` that also carries
        ``tool_calls``, ``finish_reason`` and ``usage``), or with ``stream=True``
        a ``Stream`` of pieces.
        Unknown keywords, bad messages and unknown models raise
        ``InvalidRequest`` here, before any I/O. ``provider`` may list several
        providers (``["a", "b"]`` or ``"a,b"``) to fall back on in order;
        ``max_retries`` (default 2) bounds retries of transient failures
        before the first piece. ``log=True`` (or ``store=Store(...)``) writes
        the exchange to the conversation log, under ``conversation_id``.
        """
        opened = _open_sync(provider, model, messages, stream, kwargs)
        if stream:
            return opened
        with opened:
            for _ in opened:  # the stream keeps the text
                pass
            return Completion.of(opened)

    @overload
    @staticmethod
    async def acreate(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @staticmethod
    async def acreate(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncStream: ...

    @staticmethod
    async def acreate(
        model: str | None = None,
        messages: list[Any] | None = None,
        provider: ProviderSpec = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | AsyncStream:
        """The async twin of ``create``: ``await`` it for the text or the stream."""
        opened = _open_async(provider, model, messages, stream, kwargs)
        if stream:
            return opened
        async with opened:
            async for _ in opened:  # the stream keeps the text
                pass
            return Completion.of(opened)
