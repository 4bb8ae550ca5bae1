"""What a provider function returns: an iterator of text that also carries ``meta``.

``meta`` is filled in as the answer arrives: ``usage`` (token counts) and
``finish_reason`` where the provider learns them.
"""

from __future__ import annotations

__all__ = ["AsyncReply", "Reply"]

from collections.abc import AsyncIterator, Iterator
from typing import Any


class Reply:
    """The text pieces of one answer, plus what the provider noted in ``meta``."""

    __slots__ = ("_pieces", "meta")

    def __init__(self, pieces: Iterator[str], meta: dict[str, Any]) -> None:
        self._pieces = pieces
        self.meta = meta

    def __iter__(self) -> Iterator[str]:
        # The pieces themselves: ``for`` loops then skip this wrapper's frame.
        return self._pieces

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class AsyncReply:
    """The async twin of ``Reply``."""

    __slots__ = ("_pieces", "meta")

    def __init__(self, pieces: AsyncIterator[str], meta: dict[str, Any]) -> None:
        self._pieces = pieces
        self.meta = meta

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._pieces, "aclose", None)
        if aclose is not None:
            await aclose()
