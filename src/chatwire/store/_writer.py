"""The log's writer: records leave the caller at once and reach the database in batches.

One ``LogWriter`` per store and process, on its own thread. An exchange is
queued when it starts (status ``open``) and when it ends; while it streams,
the writer takes a snapshot of its text every ``FLUSH_SECONDS``, so a
process killed mid-answer leaves what it had. Whatever waits is written in
one transaction, each exchange once (its latest state). When the database
is away the batch waits and is tried again with backoff while answers go
on; only a full queue drops records, and those are counted and reported.

Each process has a replica id and, while it has answers streaming (or
watches for others, as a gateway does), beats a heartbeat into the
database; open exchanges of a replica whose heartbeat stopped are marked
``abandoned`` by whichever process beats next.
"""

from __future__ import annotations

__all__ = ["FLUSH_SECONDS", "STALE_SECONDS", "LogWriter", "Recorder", "writers_for"]

import atexit
import logging
import socket
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from .._process import pid, random_hex
from ._exchange import Exchange, iso_time, new_key, status_of
from ._rows import exchange_from, row

if TYPE_CHECKING:
    from ._base import Store

logger = logging.getLogger("chatwire")

FLUSH_SECONDS = 2.0  # the longest a streaming answer's text waits to be written
STALE_SECONDS = 10.0  # a replica silent this long is taken for dead
QUEUE_CAPACITY = 10_000  # records waiting, beyond which new ones are dropped
_BATCH_MAX = 500
# Under load, how long the first record of a batch waits for others to join it. A batch
# costs about a millisecond however small (the commit, a new full-text segment): at
# saturation the writer spent 19 us a stream lingering 0.05 s, 12 us lingering 0.2 s.
# A record that comes after a quiet spell is written at once.
_LINGER_SECONDS = 0.2
_BACKOFF_MAX_SECONDS = 5.0
_STOP_SECONDS = 10.0  # at exit, how long the last records may wait for the database


class LogWriter:
    """Writes a store's records from a thread of its own; see the module's text."""

    def __init__(self, store: Store, capacity: int = QUEUE_CAPACITY) -> None:
        self.store = store
        self.pid = pid()
        self.replica = f"{socket.gethostname()}:{self.pid}:{random_hex(8)}"
        self.capacity = capacity
        self.watchers = 0  # gateways beating (and sweeping) even with nothing streaming
        self._queue: deque[Recorder] = deque()
        self._live: set[Recorder] = set()
        self._changed = threading.Condition()
        self._unwritten = 0  # queued or in a batch not yet committed
        self._flushing = 0  # callers waiting in flush(): no lingering for them
        self._last_write = 0.0  # when a batch was last committed (monotonic)
        self._dropped = 0
        self._reachable = True
        self._stopping = False
        self._stop_by = 0.0
        # The thread runs while there is work (records, answers streaming, or
        # ``watchers``) and ends when there is none; the next record starts another.
        self._thread: threading.Thread | None = None
        self._ending: threading.Thread | None = None
        _writers.add(self)

    def _wake(self) -> None:
        """Start the thread if it is not running (with ``_changed`` held)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="chatwire-log", daemon=True)
            self._thread.start()
        self._changed.notify()

    def _idle(self) -> bool:
        return not self._queue and not self._live and not self.watchers

    # -- the callers' side ---------------------------------------------------------

    def _enqueue(self, record: Recorder) -> None:
        # With ``_changed`` held. Records the thread has taken into a batch it cannot
        # write yet count too: while the database is away, they are what grows.
        if self._unwritten >= self.capacity:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning(
                    "chatwire: the conversation log %s is not keeping up: "
                    "%d record(s) dropped", self.store.describe(), self._dropped,
                )  # fmt: skip
            return
        self._queue.append(record)
        self._unwritten += 1
        if self._thread is None:
            self._wake()
        elif len(self._queue) == 1 or len(self._queue) == _BATCH_MAX:
            self._changed.notify()  # the first of a batch, or a full one

    def begin(self, recorder: Recorder) -> None:
        with self._changed:
            self._live.add(recorder)
            self._enqueue(recorder)

    def end(self, recorder: Recorder) -> None:
        with self._changed:
            self._live.discard(recorder)
            self._enqueue(recorder)

    def watch(self) -> None:
        """Beat and sweep even with nothing streaming, as a long-running gateway does,
        until as many ``unwatch()`` calls."""
        with self._changed:
            self.watchers += 1
            self._wake()

    def unwatch(self) -> None:
        with self._changed:
            self.watchers = max(0, self.watchers - 1)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued so far is written; whether that happened in time."""
        with self._changed:
            self._flushing += 1
            self._changed.notify()
            try:
                done = self._changed.wait_for(lambda: self._unwritten == 0, timeout)
            finally:
                self._flushing -= 1
            ending = self._ending
        if done and ending is not None:
            ending.join()  # it has nothing left to do: let it be gone, not going
        return done

    def health(self) -> dict[str, Any]:
        with self._changed:
            return {
                "reachable": self._reachable,
                "queued": self._unwritten,
                "dropped": self._dropped,
            }

    def stop(self, timeout: float = _STOP_SECONDS) -> None:
        """Write what waits (trying for up to ``timeout`` seconds), then end the thread."""
        with self._changed:
            self._stopping = True
            self.watchers = 0
            self._stop_by = time.monotonic() + timeout
            self._changed.notify()
            thread = self._thread or self._ending
        if thread is not None and threading.current_thread() is not thread:
            thread.join(timeout + 1.0)
        _writers.discard(self)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        # The exchanges to write, each once, in the order they were first queued. A
        # row is built when it is written, from the exchange as it stands then.
        batch: dict[Recorder, None] = {}
        in_batch = 0  # queue records merged into ``batch``
        next_beat = time.monotonic() + FLUSH_SECONDS
        retry_at = 0.0
        backoff = 0.0
        while True:
            wake = min(next_beat, retry_at) if batch else next_beat
            taken, stopping, live = self._take(wake, bool(batch), next_beat)
            batch.update(dict.fromkeys(taken))
            in_batch += len(taken)
            beating = time.monotonic() >= next_beat
            if beating:
                next_beat = time.monotonic() + FLUSH_SECONDS
                batch.update(dict.fromkeys(recorder for recorder in live if recorder.grew()))
                beating = bool(live) or self.watchers > 0
            if (batch and time.monotonic() >= retry_at) or beating:
                try:
                    if batch:
                        rows = [recorder.row() for recorder in batch]
                        self.store._write_rows(rows, self.replica)
                    if beating:
                        self.store.beat(self.replica, STALE_SECONDS)
                except Exception as exc:  # the database is away, locked, full...
                    backoff = min(_BACKOFF_MAX_SECONDS, backoff * 2 or 0.05)
                    retry_at = time.monotonic() + backoff
                    self._unreachable(exc)
                    if stopping and time.monotonic() >= self._stop_by:
                        self._give_up(in_batch)
                        return
                    continue
                backoff, retry_at = 0.0, 0.0
                self._last_write = time.monotonic()
                batch.clear()
                in_batch, written = 0, in_batch
                with self._changed:
                    self._unwritten -= written
                    self._reachable = True
                    # In the same hold as the count: flush() then finds the thread gone.
                    if self._ended(stopping):
                        return
                    self._changed.notify_all()
            elif not batch:
                with self._changed:
                    if self._ended(stopping):
                        return

    def _ended(self, stopping: bool) -> bool:
        """Whether the thread has nothing left to do; if so it is marked gone (lock held)."""
        if self._idle() or (stopping and not self._queue):
            self._end_thread()
            return True
        return False

    def _take(
        self, wake: float, holding: bool, next_beat: float
    ) -> tuple[list[Recorder], bool, list[Recorder]]:
        """Wait for records (or ``wake``), let a batch gather; what was queued, whether
        stopping, and at a beat the answers streaming."""
        with self._changed:
            while not self._queue and time.monotonic() < wake:
                if self._stopping and not holding:
                    break
                self._changed.wait(wake - time.monotonic())
            busy = time.monotonic() - self._last_write < _LINGER_SECONDS
            linger_until = time.monotonic() + (_LINGER_SECONDS if busy else 0.0)
            while (
                self._queue and len(self._queue) < _BATCH_MAX
                and not self._flushing and not self._stopping
                and time.monotonic() < linger_until
            ):  # fmt: skip
                self._changed.wait(linger_until - time.monotonic())
            taken = [self._queue.popleft() for _ in range(min(len(self._queue), _BATCH_MAX))]
            live = list(self._live) if time.monotonic() >= next_beat else []
            return taken, self._stopping, live

    def _end_thread(self) -> None:
        # With ``_changed`` held, so a record submitted now starts a new thread.
        self._ending, self._thread = self._thread, None
        self._changed.notify_all()

    def _unreachable(self, exc: BaseException) -> None:
        with self._changed:
            was, self._reachable = self._reachable, False
        if was:
            logger.warning(
                "chatwire: could not write the conversation log %s (will retry): %s",
                self.store.describe(), exc,
            )  # fmt: skip

    def _give_up(self, in_batch: int) -> None:
        with self._changed:
            lost = in_batch + len(self._queue)
            self._dropped += lost
            self._unwritten = 0
            self._queue.clear()
            self._end_thread()
        logger.warning(
            "chatwire: the conversation log %s stayed unreachable: %d record(s) not written",
            self.store.describe(), lost,
        )  # fmt: skip


_writers: weakref.WeakSet[LogWriter] = weakref.WeakSet()


def writers_for(location: str) -> list[LogWriter]:
    """This process's writers for the log at ``location``."""
    current = pid()
    return [w for w in list(_writers) if w.pid == current and w.store.location == location]


@atexit.register
def _write_before_exit() -> None:
    for writer in list(_writers):
        if writer.pid == pid():
            writer.stop()


_NO_PIECES: list[str] = []  # a finished recorder's: never appended to


class Recorder:
    """One exchange on its way to the log: opened at once, snapshotted, ended exactly once.

    It holds the exchange's fields as they stand, and the writer thread builds the
    row from them when it writes: what the event loop does per answer is a few
    assignments and two appends to the writer's queue.
    """

    __slots__ = ("__weakref__", "_end", "_first", "_flushed", "_pieces", "_start",
                 "_started_at", "_writer", "conversation_id", "key", "messages", "model",
                 "provider", "store")  # fmt: skip

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
        self.messages = messages
        self.key = new_key()
        self._started_at = time.time()
        self._start = time.monotonic()
        self._first: float | None = None
        # How it ended, once it has: (text, status, error, total seconds, prompt tokens,
        # completion tokens, tool calls). One tuple, set at once, so the writer thread
        # never reads half an end.
        self._end: tuple[Any, ...] | None = None
        self._pieces: list[str] = []
        self._flushed = 0
        self._writer: LogWriter = store.writer
        self._writer.begin(self)

    def follow(self, pieces: list[str]) -> None:
        """The list the stream appends its text to, for snapshots while it streams."""
        self._pieces = pieces

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
        text: str,
        error: BaseException | None,
        meta: dict[str, Any],
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        if self._end is not None:
            return
        usage = meta.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        self._end = (
            text, status_of(error, text, bool(tool_calls)),
            None if error is None else (str(error) or type(error).__name__),
            time.monotonic() - self._start, usage.get("prompt_tokens"),
            usage.get("completion_tokens"), tool_calls or None,
        )  # fmt: skip
        # The pieces are the stream's; they go with it, not with the writer thread.
        self._pieces = _NO_PIECES
        self._writer.end(self)

    # -- the writer thread's side ----------------------------------------------------

    def grew(self) -> bool:
        """Whether it streams still and has text not yet written."""
        return self._end is None and len(self._pieces) != self._flushed

    def row(self) -> tuple[Any, ...]:
        """Its values of ``WRITTEN`` as they stand: how it ended, or ``open`` with the
        text so far, which counts as written."""
        # The pieces before the end: ``finish`` sets the end first, then lets go of
        # them, so no-longer-followed pieces always come with the end.
        pieces = self._pieces
        count = len(pieces)
        values = self._values(pieces, count)
        self._flushed = count
        return values

    def _values(self, pieces: list[str], count: int) -> tuple[Any, ...]:
        end = self._end or (
            "".join(pieces[:count]), "open", None, time.monotonic() - self._start,
            None, None, None,
        )  # fmt: skip
        text, status, error, total, prompt_tokens, completion_tokens, tool_calls = end
        return row(
            self.conversation_id, iso_time(self._started_at), self.provider, self.model,
            self.messages, text, status, error, self._first, total, prompt_tokens,
            completion_tokens, tool_calls, self.key,
        )  # fmt: skip

    @property
    def exchange(self) -> Exchange:
        """The exchange as it stands, as the log would read it back."""
        pieces = self._pieces
        values = self._values(pieces, len(pieces))
        # A row of COLUMNS: no id yet, and the prompt (WRITTEN[5]) left out.
        return exchange_from((None, *values[:5], *values[6:]))
