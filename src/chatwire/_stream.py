"""``Stream`` and ``AsyncStream``: an answer's text, piece by piece.

Both keep every piece received (``text``), the tool calls the answer made
(``tool_calls``, whole, in OpenAI's message form), what the provider
reported (``meta``, with ``finish_reason`` and ``usage``), and close their
connection on ``close()``/``aclose()``, on
leaving a ``with`` block, and when dropped. When the caller asked for a log,
the exchange is logged as ``open`` when it starts, its text as it grows, and
how it ended exactly once: ``complete`` at its natural end, ``interrupted``
when it broke after some text or was stopped, ``error`` when it failed
before any text.
"""

from __future__ import annotations

__all__ = ["AsyncStream", "Completion", "Stream"]

from collections.abc import AsyncIterable, Iterable
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Recorder


class _Stopped(Exception):
    """Stands for "the caller stopped the stream" in the log."""

    def __str__(self) -> str:
        return "stopped before the end"


class Completion(str):
    """A whole answer: its text (this string), and the tool calls, finish reason and
    usage that came with it."""

    tool_calls: list[dict[str, Any]]
    finish_reason: str | None
    usage: dict[str, Any] | None

    @classmethod
    def of(cls, stream: _Pieces) -> Completion:
        completion = cls(stream.text)
        completion.tool_calls = stream.tool_calls
        completion.finish_reason = stream.finish_reason
        completion.usage = stream.usage
        return completion


class _Pieces:
    """What both stream kinds share: the pieces so far, the metadata, the log."""

    __slots__ = (
        "_finished",
        "_iterator",
        "_pieces",
        "_recorder",
        "_started",
        "conversation_id",
        "meta",
        "model",
        "provider",
        "tool_calls",
    )

    def __init__(
        self,
        iterator: object,
        provider: str,
        model: str,
        recorder: Recorder | None,
        conversation_id: str | None,
    ) -> None:
        self._iterator = iterator
        # With a log, the recorder's list: the text is flushed to the log as it grows.
        self._pieces: list[str] = [] if recorder is None else recorder.pieces
        self._recorder = recorder
        self._finished = False
        self._started = False
        self.tool_calls: list[dict[str, Any]] = []
        self.provider = provider
        self.model = model
        self.conversation_id = conversation_id
        # Filled in by the provider as the answer arrives (usage, finish_reason).
        self.meta: dict[str, Any] = getattr(iterator, "meta", {})

    @property
    def text(self) -> str:
        """Every piece received so far, joined."""
        return "".join(self._pieces)

    @property
    def finish_reason(self) -> str | None:
        """Why the answer ended (``stop``, ``length``, ``tool_calls``), once it has."""
        reason = self.meta.get("finish_reason")
        return None if reason is None else str(reason)

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token counts, where the provider reported them."""
        usage = self.meta.get("usage")
        return usage if isinstance(usage, dict) else None

    def _took(self, piece: Any) -> bool:
        """Keep ``piece``; whether it is text (anything else is a tool-call delta)."""
        if not self._started:
            self._started = True
            self._first_piece()
        if piece.__class__ is str:
            self._pieces.append(piece)
            return True
        from ._models import merge_tool_calls

        merge_tool_calls(self.tool_calls, piece)
        return False

    def _finish(self, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        if isinstance(error, KeyboardInterrupt) or type(error).__name__ == "CancelledError":
            error = _Stopped()  # Ctrl-C or a cancelled task: the caller stopped it
        if self._recorder is not None:
            self._recorder.finish(error, self.meta, self.tool_calls)

    def _first_piece(self) -> None:
        # With a fallback list, the provider that answered is known now.
        source = self._iterator
        self.provider = getattr(source, "provider", self.provider)
        self.model = getattr(source, "model", self.model)
        if self._recorder is not None:
            self._recorder.first_piece(self.provider, self.model)

    def __del__(self) -> None:
        # Dropped without reaching an end: still log what was received.
        if not self._finished and self._recorder is not None:
            with suppress(Exception):  # nothing may escape a finaliser
                self._finish(_Stopped())


class Stream(_Pieces):
    """The text of an answer, piece by piece, as it arrives."""

    __slots__ = ("_next",)

    def __init__(
        self,
        iterator: Iterable[str],
        provider: str,
        model: str,
        recorder: Recorder | None = None,
        conversation_id: str | None = None,
    ) -> None:
        super().__init__(iterator, provider, model, recorder, conversation_id)
        self._next = iter(iterator).__next__

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        while True:
            try:
                piece = self._next()
            except StopIteration:
                self._finish(None)
                raise
            except BaseException as exc:
                self._finish(exc)
                raise
            if self._started and piece.__class__ is str:  # the common case, per token
                self._pieces.append(piece)
                return piece
            if self._took(piece):
                return piece

    def close(self) -> None:
        """Stop the answer and close its connection. Safe to call twice."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
        self._finish(_Stopped())

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncStream(_Pieces):
    """The async twin of ``Stream``."""

    __slots__ = ("_anext",)

    def __init__(
        self,
        iterator: AsyncIterable[str],
        provider: str,
        model: str,
        recorder: Recorder | None = None,
        conversation_id: str | None = None,
    ) -> None:
        super().__init__(iterator, provider, model, recorder, conversation_id)
        self._anext = aiter(iterator).__anext__

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> str:
        # anext_event() inlined: one coroutine less per token.
        while True:
            try:
                piece = await self._anext()
            except StopAsyncIteration:
                self._finish(None)
                raise
            except BaseException as exc:
                self._finish(exc)
                raise
            if self._started and piece.__class__ is str:  # the common case, per token
                self._pieces.append(piece)
                return piece
            if self._took(piece):
                return piece

    async def anext_event(self) -> Any:
        """The next piece of the answer: text, or a tool-call delta (``ToolCallDelta``)."""
        try:
            piece = await self._anext()
        except StopAsyncIteration:
            self._finish(None)
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        if self._started and piece.__class__ is str:  # the common case, per token
            self._pieces.append(piece)
        else:
            self._took(piece)
        return piece

    async def aclose(self) -> None:
        """Stop the answer and close its connection. Safe to call twice."""
        aclose = getattr(self._iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        self._finish(_Stopped())

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
