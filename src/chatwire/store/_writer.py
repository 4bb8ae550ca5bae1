"""The log's writer: records leave the caller at once and reach the database in batches.

One ``LogWriter`` per store and process, on its own thread. An exchange is
in ``live`` while it streams: the writer takes its row (status ``open``) at
its next look, and a snapshot of its text every ``FLUSH_SECONDS``, so a
process killed mid-answer leaves what it had. Its end is queued, as its
whole row, strings and numbers. Whatever waits is written in one
transaction, an exchange that ended there as it ended (not also as it
began). When the database is away the batch waits and is tried again with
backoff while answers go on; only a full queue drops records, and those are
counted and reported.

Each process has a replica id and, while it has answers streaming (or
watches for others, as a gateway does), beats a heartbeat into the
database, the first before it writes an answer's start; open exchanges of
a replica whose heartbeat stopped are marked ``abandoned`` by whichever
process beats next.
"""

from __future__ import annotations

__all__ = ["FLUSH_SECONDS", "STALE_SECONDS", "LogWriter", "writers_for"]

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from .._process import pid, random_hex

if TYPE_CHECKING:
    from ._base import Store
    from ._recorder import Recorder
    from ._rows import Row

logger = logging.getLogger("chatwire")

FLUSH_SECONDS = 2.0  # the longest a streaming answer's text waits to be written
STALE_SECONDS = 10.0  # a replica silent this long is taken for dead
QUEUE_CAPACITY = 10_000  # records waiting, beyond which new ones are dropped
# Under load, how long the writer lets records gather after a batch. A batch costs
# about 0.7 ms of a saturated SQLite server's time whether it holds 20 rows or 60
# (opening the transaction and its statements, the commit, a new full-text
# segment), and with two workers each writes its own; lingering longer than this
# gained nothing measurable. A record that comes after a quiet spell is written at
# once.
_LINGER_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 5.0
_STOP_SECONDS = 10.0  # at exit, how long the last records may wait for the database


class LogWriter:
    """Writes a store's records from a thread of its own; see the module's text.

    Callers take no lock: a recorder enters and leaves ``live``, appends its
    end to ``queue``, and reads ``resting``; the thread copies the queue and
    removes from its left what it has written. Each of these is one step the
    interpreter's lock keeps whole; a record costs the caller no call beyond
    its own.

    The thread touches no object of the event loop's but the rows (tuples of
    strings and numbers) and, at each look, the recorders still streaming.
    Reading an answer's objects from this thread and freeing them here cost a
    busy gateway about two percent of its throughput, side by side at
    saturation; a row's few strings and numbers cost it little.
    """

    def __init__(self, store: Store, capacity: int = QUEUE_CAPACITY) -> None:
        self.store = store
        self.replica = f"{socket.gethostname()}:{pid()}:{random_hex(8)}"
        self.capacity = capacity
        self.watchers = 0  # gateways beating (and sweeping) even with nothing streaming
        self.queue: deque[Row] = deque()  # every row not yet written, in order
        # The ends that found the queue full while their starts were in: written
        # all the same, beyond the queue's capacity (one an exchange at most).
        self.late: deque[Row] = deque()
        self.live: dict[Recorder, None] = {}  # the answers streaming, for snapshots
        # True when no thread runs or it sleeps until roused: the next record rouses it.
        self.resting = True
        self._roused = threading.Event()
        self._changed = threading.Condition()  # the thread's start and end, counts, cycles
        self._cycle = 0  # cycles of the thread begun
        self._written_cycle = 0  # the last cycle after which nothing taken was unwritten
        self._wanted_cycle = 0  # the last cycle a flush() waits for
        self._flushing = 0  # callers waiting in flush(): no lingering for them
        self._dropped = 0
        self._reachable = True
        self._stopping = False
        self._stop_by = 0.0
        # The thread runs while there is work (records, answers streaming, or
        # ``watchers``) and ends when there is none; the next record starts another.
        self._thread: threading.Thread | None = None
        self._ending: threading.Thread | None = None
        _writers.add(self)

    # -- the callers' side ---------------------------------------------------------

    def rouse(self) -> None:
        """Have the thread look at the queue now, starting one if none runs."""
        with self._changed:
            self._rouse()

    def _rouse(self) -> None:
        # With ``_changed`` held.
        if self._thread is None:
            self.resting = False
            self._thread = threading.Thread(target=self._run, name="chatwire-log", daemon=True)
            self._thread.start()
        self._roused.set()

    def drop(self) -> None:
        """Count a record the full queue turned away, and say so now and then."""
        with self._changed:
            self._dropped += 1
            dropped = self._dropped
        if dropped == 1 or dropped % 1000 == 0:
            logger.warning(
                "chatwire: the conversation log %s is not keeping up: %d record(s) dropped",
                self.store.describe(), dropped,
            )  # fmt: skip

    def watch(self) -> None:
        """Beat and sweep even with nothing streaming, as a long-running gateway does,
        until as many ``unwatch()`` calls."""
        with self._changed:
            self.watchers += 1
            self._rouse()

    def unwatch(self) -> None:
        with self._changed:
            self.watchers = max(0, self.watchers - 1)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued so far, and every streaming answer's start, is
        written; whether that happened in time."""
        with self._changed:
            done = self._thread is None and not self._waiting()
            if not done:
                wanted = self._cycle + 1  # a cycle that begins now takes all queued so far
                self._wanted_cycle = max(self._wanted_cycle, wanted)
                self._flushing += 1
                self._rouse()
                try:
                    done = self._changed.wait_for(
                        lambda: (
                            self._written_cycle >= wanted
                            or (self._thread is None and not self._waiting())
                        ),
                        timeout,
                    )
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
                "queued": len(self.queue) + len(self.late),
                "dropped": self._dropped,
            }

    def stop(self, timeout: float = _STOP_SECONDS) -> None:
        """Write what waits (trying for up to ``timeout`` seconds), then end the thread."""
        with self._changed:
            self._stopping = True
            self.watchers = 0
            self._stop_by = time.monotonic() + timeout
            self._roused.set()
            thread = self._thread or self._ending
        if thread is not None and threading.current_thread() is not thread:
            thread.join(timeout + 1.0)
        _writers.discard(self)

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        pending = _Pending()
        next_beat = time.monotonic() + FLUSH_SECONDS
        beaten_at = float("-inf")  # this thread has not beaten
        retry_at = backoff = last_write = 0.0
        while True:
            if (
                self.queue and not self._stopping and not self._flushing
                and time.monotonic() - last_write < _LINGER_SECONDS
            ):  # fmt: skip
                # Busy: let the batch gather, but not past the next snapshot's time.
                self._sleep(min(_LINGER_SECONDS, next_beat - time.monotonic()))
            with self._changed:
                self._cycle += 1
                cycle, stopping = self._cycle, self._stopping
            pending.take(self)
            now = time.monotonic()
            due = now >= next_beat
            streaming = pending.snapshot(self.live, due)
            # Beat before an answer's first row is written, not up to a beat later: a row
            # of a replica with no recent beat is another's sweep to abandon.
            beating = (streaming or self.watchers > 0) and (due or now - beaten_at > FLUSH_SECONDS)
            if due or beating:
                next_beat = now + FLUSH_SECONDS
            if (pending.rows and now >= retry_at) or beating:
                try:
                    if self._write(pending, beating):
                        last_write = time.monotonic()
                    if beating:
                        beaten_at = now
                except Exception as exc:  # the database is away, locked, full...
                    backoff = min(_BACKOFF_MAX_SECONDS, backoff * 2 or 0.05)
                    retry_at = time.monotonic() + backoff
                    self._unreachable(exc)
                    if stopping and time.monotonic() >= self._stop_by:
                        self._give_up(pending)
                        return
                else:
                    backoff = retry_at = 0.0
            if pending.rows:  # to be tried again
                self._sleep(retry_at - time.monotonic())
                continue
            idle = stopping or not (self.live or self.watchers)
            if self._settle(cycle, end=idle and not self._waiting()):
                return
            if not idle and not self._waiting():
                self._sleep(next_beat - time.monotonic(), resting=True)

    def _write(self, pending: _Pending, beating: bool) -> bool:
        """Beat if it is time, then write the batch in one transaction; whether rows went."""
        has_rows = bool(pending.rows)
        if beating:  # first: the rows' replica is alive before they are there
            self.store.beat(self.replica, STALE_SECONDS)
        if has_rows:
            self.store._write_rows(pending.rows, self.replica)
        pending.written(self)
        with self._changed:
            self._reachable = True
        return has_rows

    def _sleep(self, seconds: float, resting: bool = False) -> None:
        """Wait ``seconds`` or until roused; ``resting``: a record queued meanwhile rouses."""
        self._roused.clear()
        if resting:
            self.resting = True
            # Queued, or begun, before ``resting`` was seen: it will not rouse. Nor will a
            # flush() whose rouse came while the thread wrote: the clearing above undid it.
            if (
                self._waiting() or self._wanted_cycle > self._written_cycle
                or any(not r.opened for r in list(self.live))
            ):  # fmt: skip
                self.resting = False
                return
        self._roused.wait(max(0.0, seconds))
        self.resting = False

    def _settle(self, cycle: int, end: bool) -> bool:
        """Mark ``cycle`` written and, if ``end`` and no work came meanwhile, end the
        thread in the same hold, so that a flush() it satisfies finds the thread gone;
        whether it ended."""
        with self._changed:
            self._written_cycle = cycle
            if end:
                self.resting = True
                if self._waiting() or self.watchers:
                    self.resting = end = False
                else:
                    self._ending, self._thread = self._thread, None
            self._changed.notify_all()
            return end

    def _unreachable(self, exc: BaseException) -> None:
        with self._changed:
            was, self._reachable = self._reachable, False
        if was:
            logger.warning(
                "chatwire: could not write the conversation log %s (will retry): %s",
                self.store.describe(), exc,
            )  # fmt: skip

    def _give_up(self, pending: _Pending) -> None:
        with self._changed:
            # The queues hold what was taken from them; the starts were taken from ``live``.
            lost = len(self.queue) + len(self.late) + pending.opened
            self._dropped += lost
            self.queue.clear()
            self.late.clear()
            self.resting = True
            self._ending, self._thread = self._thread, None
            self._changed.notify_all()
        logger.warning(
            "chatwire: the conversation log %s stayed unreachable: %d record(s) not written",
            self.store.describe(), lost,
        )  # fmt: skip

    def _waiting(self) -> bool:
        """Whether rows wait that the thread has not written."""
        return bool(self.queue or self.late)


class _Pending:
    """The writer thread's own account of what it has taken and not yet written."""

    __slots__ = ("merged", "merged_late", "opened", "rows")

    def __init__(self) -> None:
        self.rows: list[Row] = []  # to write, in the order they were taken
        self.merged = 0  # rows at the queue's head already in ``rows``
        self.merged_late = 0  # and at the head of the writer's ``late``
        self.opened = 0  # and exchanges' first rows

    def take(self, writer: LogWriter) -> None:
        """Add the rows queued since the last look, and the late ends."""
        queued = list(writer.queue)  # one step, while callers may append
        self.rows += queued[self.merged :]
        self.merged = len(queued)
        if writer.late:
            late = list(writer.late)
            self.rows += late[self.merged_late :]
            self.merged_late = len(late)

    def snapshot(self, live: dict[Recorder, None], beating: bool) -> bool:
        """The first rows of the answers streaming that have had none taken and, at a
        beat, the text the others added; whether any still streams."""
        streaming = list(live)  # one step, while callers come and go
        for recorder in streaming:
            first = not recorder.opened
            row = recorder.snapshot(beating)
            if row is not None:
                self.rows.append(row)
                self.opened += first
        return bool(streaming)

    def written(self, writer: LogWriter) -> None:
        for _ in range(self.merged):
            writer.queue.popleft()
        for _ in range(self.merged_late):
            writer.late.popleft()
        self.merged = self.merged_late = self.opened = 0
        self.rows.clear()


_writers: weakref.WeakSet[LogWriter] = weakref.WeakSet()


def writers_for(location: str) -> list[LogWriter]:
    """This process's writers for the log at ``location``."""
    return [w for w in list(_writers) if w.store.location == location]


@atexit.register
def _write_before_exit() -> None:
    for writer in list(_writers):
        writer.stop()


def _forget_parents_writers() -> None:
    # A fork's child neither flushes nor stops its parent's writers (their threads
    # are not in it); it starts its own on the first record it queues.
    for writer in list(_writers):
        _writers.discard(writer)
        if writer.store._writer is writer:
            writer.store._writer = None


os.register_at_fork(after_in_child=_forget_parents_writers)
