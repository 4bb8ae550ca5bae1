"""``ChatCompletion.create`` and ``acreate``: resolve, validate, dispatch.

Both check everything they can (messages, model, options) before any I/O.
With ``stream=True`` they hand back a ``Stream`` / ``AsyncStream`` of text
pieces that closes its connection on ``close()``/``aclose()``, on leaving a
``with`` block, on ``break`` (once the stream is dropped) and on task
cancellation. With ``stream=False`` they return the whole text.
"""

from __future__ import annotations

__all__ = ["AsyncStream", "ChatCompletion", "Stream"]

from collections.abc import AsyncIterator, Iterator
from types import ModuleType, TracebackType
from typing import Any, Literal, overload

from . import providers
from .providers._base import prepare, short_name


class Stream:
    """The text of an answer, piece by piece, as it arrives.

    ``text`` holds every piece received so far; ``meta`` what the provider
    reported about the answer (``usage``, ``finish_reason``) once known.
    """

    __slots__ = ("_iterator", "_next", "_pieces", "meta", "model", "provider")

    def __init__(self, iterator: Iterator[str], provider: str, model: str) -> None:
        self._iterator = iterator
        self._next = iter(iterator).__next__
        self._pieces: list[str] = []
        self.provider = provider
        self.model = model
        # Filled in by the provider as the answer arrives (usage, finish_reason).
        self.meta: dict[str, Any] = getattr(iterator, "meta", {})

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        piece = self._next()
        self._pieces.append(piece)
        return piece

    def close(self) -> None:
        """Stop the answer and close its connection. Safe to call twice."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream:
    """The async twin of ``Stream``."""

    __slots__ = ("_anext", "_iterator", "_pieces", "meta", "model", "provider")

    def __init__(self, iterator: AsyncIterator[str], provider: str, model: str) -> None:
        self._iterator = iterator
        self._anext = aiter(iterator).__anext__
        self._pieces: list[str] = []
        self.provider = provider
        self.model = model
        self.meta: dict[str, Any] = getattr(iterator, "meta", {})

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> str:
        piece = await self._anext()
        self._pieces.append(piece)
        return piece

    async def aclose(self) -> None:
        """Stop the answer and close its connection. Safe to call twice."""
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


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


def _open_sync(
    provider: object, model: str | None, messages: object, stream: bool, options: dict[str, Any]
) -> Stream:
    module = providers.resolve(provider)
    checked_model, checked_messages, checked_options = prepare(module, model, messages, options)
    pieces = module._create_completion(checked_model, checked_messages, stream, **checked_options)
    return Stream(pieces, short_name(module.__name__), checked_model)


def _open_async(
    provider: object, model: str | None, messages: object, stream: bool, options: dict[str, Any]
) -> AsyncStream:
    module: ModuleType = providers.resolve(provider)
    checked_model, checked_messages, checked_options = prepare(module, model, messages, options)
    create = getattr(module, "_create_async_completion", None)
    if create is not None:
        pieces = create(checked_model, checked_messages, stream, **checked_options)
    else:
        sync = module._create_completion(checked_model, checked_messages, stream, **checked_options)
        pieces = _in_thread(iter(sync))
    return AsyncStream(pieces, short_name(module.__name__), checked_model)


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
        ``InvalidRequest`` here, before any I/O.
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
