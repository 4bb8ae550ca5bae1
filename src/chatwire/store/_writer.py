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
import os
import socket
import threading
import time
import weakref
from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._exchange import Exchange, status_of

if TYPE_CHECKING:
    from ._base import Store

logger = logging.getLogger("chatwire")

FLUSH_SECONDS = 2.0  # the longest a streaming answer's text waits to be written
STALE_SECONDS = 10.0  # a replica silent this long is taken for dead
QUEUE_CAPACITY = 10_000  # records waiting, beyond which new ones are dropped
_BATCH_MAX = 500
# Under load, how long the first record of a batch waits for others to join it: waking
# the thread and committing for every record would cost more than the records. A
# record that comes after a quiet spell is written at once.
_LINGER_SECONDS = 0.05
_BACKOFF_MAX_SECONDS = 5.0
_STOP_SECONDS = 10.0  # at exit, how long the last records may wait for the database


def _merge(batch: dict[str, Exchange], record: Exchange) -> None:
    # An exchange's latest state wins, except that a snapshot never replaces its end.
    held = batch.get(record.key)
    if held is None or held.status == "open" or record.status != "open":
        batch[record.key] = record


class LogWriter:
    """Writes a store's records from a thread of its own; see the module's text."""

    def __init__(self, store: Store, capacity: int = QUEUE_CAPACITY) -> None:
        self.store = store
        self.pid = os.getpid()
        self.replica = f"{socket.gethostname()}:{self.pid}:{os.urandom(4).hex()}"
        self.capacity = capacity
        self.watchers = 0  # gateways beating (and sweeping) even with nothing streaming
        self._queue: deque[Exchange] = deque()
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

    def _enqueue(self, record: Exchange) -> None:
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
            self._enqueue(recorder.exchange)

    def end(self, recorder: Recorder, ended: Exchange) -> None:
        with self._changed:
            self._live.discard(recorder)
            self._enqueue(ended)

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
        batch: dict[str, Exchange] = {}
        in_batch = 0  # queue records merged into ``batch``
        next_beat = time.monotonic() + FLUSH_SECONDS
        retry_at = 0.0
        backoff = 0.0
        while True:
            wake = min(next_beat, retry_at) if batch else next_beat
            taken, stopping, live = self._take(wake, bool(batch), next_beat)
            for record in taken:
                _merge(batch, record)
            in_batch += len(taken)
            beating = time.monotonic() >= next_beat
            if beating:
                next_beat = time.monotonic() + FLUSH_SECONDS
                for recorder in live:
                    snapshot = recorder.snapshot()
                    if snapshot is not None:
                        _merge(batch, snapshot)
                beating = bool(live) or self.watchers > 0
            if (batch and time.monotonic() >= retry_at) or beating:
                try:
                    if batch:
                        self.store.write(list(batch.values()), self.replica)
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
    ) -> tuple[list[Exchange], bool, list[Recorder]]:
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
    pid = os.getpid()
    return [w for w in list(_writers) if w.pid == pid and w.store.location == location]


@atexit.register
def _write_before_exit() -> None:
    for writer in list(_writers):
        if writer.pid == os.getpid():
            writer.stop()


class Recorder:
    """One exchange on its way to the log: opened at once, snapshotted, ended exactly once."""

    __slots__ = ("__weakref__", "_done", "_first", "_flushed", "_pieces", "_start",
                 "_writer", "exchange", "store")  # fmt: skip

    def __init__(self, store: Store, exchange: Exchange) -> None:
        self.store = store
        self.exchange = exchange
        self._start = time.monotonic()
        self._first: float | None = None
        self._done = False
        self._pieces: list[str] = []
        self._flushed = 0
        exchange.status = "open"
        self._writer: LogWriter = store.writer
        self._writer.begin(self)

    def follow(self, pieces: list[str]) -> None:
        """The list the stream appends its text to, for snapshots while it streams."""
        self._pieces = pieces

    def snapshot(self) -> Exchange | None:
        """The exchange as it stands, if its text grew since the last one (writer thread)."""
        pieces = self._pieces
        count = len(pieces)
        if count == self._flushed or self._done:
            return None
        self._flushed = count
        return replace(
            self.exchange, response="".join(pieces[:count]),
            first_token_seconds=self._first,
            total_seconds=time.monotonic() - self._start,
        )  # fmt: skip

    def first_piece(self) -> None:
        if self._first is None:
            self._first = time.monotonic() - self._start

    def finish(
        self,
        text: str,
        error: BaseException | None,
        meta: dict[str, Any],
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        if self._done:
            return
        self._done = True
        # The end is a new record: the one queued at the start may be in the writer's
        # hands right now, and must not change under them.
        exchange = self.exchange.__copy__()
        exchange.response = text
        exchange.tool_calls = tool_calls or None
        exchange.status = status_of(error, text, bool(tool_calls))
        exchange.error = None if error is None else (str(error) or type(error).__name__)
        exchange.first_token_seconds = self._first
        exchange.total_seconds = time.monotonic() - self._start
        usage = meta.get("usage")
        if isinstance(usage, dict):
            exchange.prompt_tokens = usage.get("prompt_tokens")
            exchange.completion_tokens = usage.get("completion_tokens")
        self.exchange = exchange
        self._writer.end(self, exchange)
