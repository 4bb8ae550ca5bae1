"""``ChatCompletion.create`` and ``acreate``: resolve, validate, dispatch.

Both check everything they can (messages, model, options) before any I/O.
With ``stream=True`` they hand back a ``Stream`` / ``AsyncStream`` of text
pieces that closes its connection on ``close()``/``aclose()``, on leaving a
``with`` block, on ``break`` (once the stream is dropped) and on task
cancellation. With ``stream=False`` they return the whole text.
"""

from __future__ import annotations

__all__ = ["ChatCompletion"]

from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, overload

from . import providers
from ._errors import InvalidRequest
from ._stream import AsyncStream, Stream
from .providers._base import prepare, short_name

if TYPE_CHECKING:
    from .store import Recorder, Store


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


async def _in_thread(iterator: Iterator[str]) -> AsyncIterator[str]:
    """Drive a sync-only provider from async code without blocking the loop."""
    import asyncio

    done = object()
    try:
        while True:
            piece = await asyncio.to_thread(next, iterator, done)
            if piece is done:
                return
            yield piece  # type: ignore[misc]
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


_LOG_KEYWORDS = ("log", "store", "conversation_id")


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate chatwire's own keywords (logging) from the provider's options."""
    ours = {name: options.pop(name) for name in _LOG_KEYWORDS if name in options}
    return ours, options


def _open_sync(
    provider: object, model: str | None, messages: object, stream: bool, options: dict[str, Any]
) -> Stream:
    ours, options = _split(options)
    module = providers.resolve(provider)
    checked_model, checked_messages, checked_options = prepare(module, model, messages, options)
    name = short_name(module.__name__)
    recorder, cid = _recorder(
        bool(ours.get("log")), ours.get("store"), ours.get("conversation_id"),
        name, checked_model, checked_messages,
    )  # fmt: skip
    pieces = module._create_completion(checked_model, checked_messages, stream, **checked_options)
    return Stream(pieces, name, checked_model, recorder, cid)


def _open_async(
    provider: object, model: str | None, messages: object, stream: bool, options: dict[str, Any]
) -> AsyncStream:
    ours, options = _split(options)
    module: ModuleType = providers.resolve(provider)
    checked_model, checked_messages, checked_options = prepare(module, model, messages, options)
    name = short_name(module.__name__)
    recorder, cid = _recorder(
        bool(ours.get("log")), ours.get("store"), ours.get("conversation_id"),
        name, checked_model, checked_messages,
    )  # fmt: skip
    create = getattr(module, "_create_async_completion", None)
    if create is not None:
        pieces = create(checked_model, checked_messages, stream, **checked_options)
    else:
        sync = module._create_completion(checked_model, checked_messages, stream, **checked_options)
        pieces = _in_thread(iter(sync))
    return AsyncStream(pieces, name, checked_model, recorder, cid)


class ChatCompletion:
    """The unified entry point, in the shape of the seed's ecosystem."""

    @overload
    @staticmethod
    def create(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: str | ModuleType | None = ...,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @staticmethod
    def create(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: str | ModuleType | None = ...,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> Stream: ...

    @staticmethod
    def create(
        model: str | None = None,
        messages: list[Any] | None = None,
        provider: str | ModuleType | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | Stream:
        """Ask ``provider`` (default: the registry's default) for a completion.

        Returns the whole text, or with ``stream=True`` a ``Stream`` of pieces.
        Unknown keywords, bad messages and unknown models raise
        ``InvalidRequest`` here, before any I/O. ``log=True`` (or
        ``store=Store(...)``) writes the exchange to the conversation log,
        under ``conversation_id`` when given.
        """
        opened = _open_sync(provider, model, messages, stream, kwargs)
        if stream:
            return opened
        with opened:
            return "".join(opened)

    @overload
    @staticmethod
    async def acreate(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: str | ModuleType | None = ...,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> str: ...

    @overload
    @staticmethod
    async def acreate(
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: str | ModuleType | None = ...,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncStream: ...

    @staticmethod
    async def acreate(
        model: str | None = None,
        messages: list[Any] | None = None,
        provider: str | ModuleType | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | AsyncStream:
        """The async twin of ``create``: ``await`` it for the text or the stream."""
        opened = _open_async(provider, model, messages, stream, kwargs)
        if stream:
            return opened
        async with opened:
            return "".join([piece async for piece in opened])
