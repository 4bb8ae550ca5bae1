"""The callers' side of the log: a ``Recorder`` for each exchange."""

from __future__ import annotations

__all__ = ["Recorder"]

import json
import time
from typing import TYPE_CHECKING, Any

from . import _exchange
from ._exchange import Exchange, iso_time, prompt_of, status_of
from ._rows import Row, json_text, row

if TYPE_CHECKING:
    from ._base import Store


class Recorder:
    """One exchange on its way to the log: opened, snapshotted, ended exactly once.

    While it streams it is in the writer's ``live``: the writer thread
    writes its row, ``open``, at its next look, and its text as it grows at
    each beat (``snapshot``). Its end is queued as the whole row, built on
    the caller's thread (``Row``: strings and numbers): the writer thread
    reads no answer's objects once it has ended, and those are freed here,
    when the answer is done with them, as they would be with no log.

    An answer that ends before the writer's next look (most, on a busy
    gateway: the writer lets a batch gather for half a second) is
    written once, as it ended, and its start costs the event loop nothing
    but entering ``live``.
    """

    __slots__ = ("__weakref__", "_end", "_first", "_flushed", "_opened", "_row_head", "_start",
                 "_writer", "conversation_id", "key", "model", "pieces", "provider",
                 "started_at", "store")  # fmt: skip

    def __init__(
        self,
        store: Store,
        conversation_id: str,
        provider: str,
        model: str,
        messages: list[dict[str, Any]],
    ) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.provider = provider
        self.model = model
        self.key = next(_exchange.keys)
        self.started_at = iso_time(time.time())
        self._start = time.monotonic()
        self._first: float | None = None
        # How it ended, once it has: (text, status, error, total seconds, prompt tokens,
        # completion tokens, tool calls). One tuple, set at once, so the writer thread
        # never reads half an end.
        self._end: tuple[Any, ...] | None = None
        self.pieces: list[str] = []  # its text: the stream appends each piece here
        self._flushed = 0  # pieces of its text written
        # Whether the writer thread has taken its first row (or found it ended): set by
        # that thread, and before it looks at ``_end``, so that an end finding the
        # queue full is either written beyond the capacity or its start never is.
        self._opened = False
        # The messages as the log keeps them, encoded once for all of its rows, and now:
        # what the caller does with its list from here on is not logged.
        self._row_head = (json_text(messages), prompt_of(messages))
        writer = self._writer = store._writer or store.writer
        writer.live[self] = None
        if writer.resting:
            writer.rouse()

    def first_piece(self, provider: str | None = None, model: str | None = None) -> None:
        """The answer has begun, from ``provider`` and ``model`` (with a fallback list,
        known only now)."""
        if provider is not None:
            self.provider = provider
        if model is not None:
            self.model = model
        if self._first is None:
            self._first = time.monotonic() - self._start

    def finish(
        self,
        error: BaseException | None,
        meta: dict[str, Any],
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """It ended, with ``pieces`` as its text; a second end changes nothing."""
        if self._end is not None:
            return
        usage = meta.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        text = "".join(self.pieces)
        self._end = end = (
            text,
            "complete" if error is None else status_of(error, text, bool(tool_calls)),
            None if error is None else (str(error) or type(error).__name__),
            time.monotonic() - self._start, usage.get("prompt_tokens"),
            usage.get("completion_tokens"), tool_calls or None,
        )  # fmt: skip
        row = self._row(end)
        writer = self._writer
        if len(writer.queue) < writer.capacity:
            writer.queue.append(row)
        elif self._opened:  # its start is in: its end goes in beyond the capacity
            writer.late.append(row)
        else:
            writer.drop()
        del writer.live[self]
        if writer.resting:
            writer.rouse()

    def _row(self, end: tuple[Any, ...]) -> Row:
        """Its row of ``WRITTEN``, with ``end`` (see ``_end``) as how it stands."""
        text, status, error, total, prompt_tokens, completion_tokens, tool_calls = end
        messages, prompt = self._row_head
        return row(
            self.conversation_id, self.started_at, self.provider, self.model, messages, prompt,
            text, status, error, self._first, total, prompt_tokens, completion_tokens,
            tool_calls, self.key,
        )  # fmt: skip

    # -- the writer thread's side ----------------------------------------------------

    @property
    def opened(self) -> bool:
        """Whether the writer has taken its first row (or found it ended)."""
        return self._opened

    def snapshot(self, beating: bool) -> Row | None:
        """If it streams still, and no row of it was taken yet or (``beating``) it has
        text not yet written: its row, ``open``, with the text so far (which then
        counts as written)."""
        first, self._opened = not self._opened, True  # first: see ``_opened`` in __init__
        if self._end is not None:
            return None
        count = len(self.pieces)
        if not first and not (beating and count > self._flushed):
            return None
        self._flushed = count
        return self._row(self._open("".join(self.pieces[:count])))

    def _open(self, text: str) -> tuple[Any, ...]:
        """How it stands while it streams, with ``text`` received (see ``_end``)."""
        return (text, "open", None, time.monotonic() - self._start, None, None, None)

    @property
    def exchange(self) -> Exchange:
        """The exchange as it stands, as the log would read it back."""
        end = self._end or self._open("".join(self.pieces))
        text, status, error, total, prompt_tokens, completion_tokens, tool_calls = end
        return Exchange(
            conversation_id=self.conversation_id, provider=self.provider, model=self.model,
            messages=json.loads(self._row_head[0]), response=text, status=status, error=error,
            started_at=self.started_at, first_token_seconds=self._first, total_seconds=total,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            tool_calls=tool_calls, key=self.key,
        )  # fmt: skip
