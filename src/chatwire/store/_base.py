"""``Store``: the log's one interface, whichever database is behind it.

A backend writes batches of exchanges (one transaction a batch, each
exchange upserted by its ``key``, so writing a snapshot again is harmless),
keeps a heartbeat per writing process, and answers the reads. What is shared
lives here: picking the backend from a location, the writer that takes
records off the caller's thread, and waiting for this process's own writes
before a read, so a caller reads what it has just logged.
"""

from __future__ import annotations

__all__ = ["Store"]

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import InvalidRequest
from ._exchange import STATUSES, Exchange
from ._rows import Row, latest_rows, row_of

logger = logging.getLogger("chatwire")


# How long a read waits for this process's queued writes before it reads anyway.
_SETTLE_SECONDS = 10.0


def _is_postgres(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


class Store:
    """The conversation log: SQLite (a path, a ``sqlite:///`` URL, or the default file)
    or PostgreSQL (a ``postgresql://`` URL). Safe to share between threads.

    ``Store(location)`` gives the backend the location names. Exchanges the
    library records go through a writer thread, never the caller's; reads
    first wait for this process's writes still queued.
    """

    path: Path | None = None  # the SQLite file; None for a server database

    def __new__(cls, location: str | os.PathLike[str] | None = None) -> Store:
        backend = cls
        if cls is Store:
            if _is_postgres(location):
                from ._postgres import PostgresStore

                backend = PostgresStore
            else:
                from ._sqlite import SQLiteStore

                backend = SQLiteStore
        return super().__new__(backend)

    def __init__(self, location: str | os.PathLike[str] | None = None) -> None:
        self._writer_lock = threading.Lock()
        self._writer: Any = None  # a LogWriter, made on first use
        self._warned = False

    # -- what a backend provides ---------------------------------------------------

    @property
    def location(self) -> str:
        """What ``Store(...)`` takes to open this log again: a path or a URL."""
        raise NotImplementedError

    def describe(self) -> str:
        """Where the log is, for messages (never with a password)."""
        raise NotImplementedError

    def write(self, exchanges: Sequence[Exchange], replica: str | None = None) -> None:
        """Upsert ``exchanges`` by key in one transaction. Raises on failure."""
        self._write_rows([row_of(e) for e in exchanges], replica)

    def _write_rows(self, rows: Sequence[Row], replica: str | None) -> None:
        """``write``, of rows of ``WRITTEN`` (the writer's come so, never as
        ``Exchange`` objects); an exchange may come more than once."""
        self._upsert_rows(latest_rows(rows), replica)

    def _upsert_rows(self, rows: list[Row], replica: str | None) -> None:
        """Upsert rows, one an exchange, by key in one transaction."""
        raise NotImplementedError

    def _id_of(self, key: str) -> int:
        raise NotImplementedError

    def beat(self, replica: str, stale_after: float) -> int:
        """Note ``replica`` alive; mark ``abandoned`` the open exchanges of replicas silent
        for ``stale_after`` seconds. How many were marked."""
        raise NotImplementedError

    def _recent(self, limit: int) -> list[Exchange]:
        raise NotImplementedError

    def _conversation(self, conversation_id: str) -> list[Exchange]:
        raise NotImplementedError

    def _search(self, words: list[str], limit: int) -> list[Exchange]:
        raise NotImplementedError

    def _conversations(self, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # -- writing -----------------------------------------------------------------------

    def record(self, exchange: Exchange) -> int | None:
        """Write one exchange now; its id, or ``None`` if it could not be written."""
        if exchange.status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
        try:
            self.write([exchange])
            exchange.id = self._id_of(exchange.key)
        except Exception as exc:  # the log never breaks the answer
            self.warn_once(exc)
            return None
        return exchange.id

    @property
    def writer(self) -> Any:
        """This process's writer for the log (a ``LogWriter``), started on first use."""
        writer = self._writer
        if writer is not None:  # a fork's child has forgotten its parent's
            return writer
        with self._writer_lock:
            if self._writer is None:
                from ._writer import LogWriter

                self._writer = LogWriter(self)
            return self._writer

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the records this process queued for this log (through this store or
        another open on the same location), and the starts of its answers streaming, are
        written; whether they all were in time."""
        from ._writer import writers_for

        deadline = None if timeout is None else time.monotonic() + timeout
        for writer in writers_for(self.location):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not writer.flush(left):
                return False
        return True

    def health(self) -> dict[str, Any]:
        """Whether the log is reachable, and how many records wait or were dropped."""
        writer = self._writer
        if writer is None:
            return {"reachable": True, "queued": 0, "dropped": 0}
        return dict(writer.health())

    def warn_once(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "chatwire: could not write the conversation log %s: %s", self.describe(), exc
            )

    # -- reading -----------------------------------------------------------------------

    def recent(self, limit: int = 10) -> list[Exchange]:
        """The latest exchanges, oldest first."""
        self.flush(_SETTLE_SECONDS)
        return self._recent(limit)

    def conversation(self, conversation_id: str) -> list[Exchange]:
        """Every exchange of one conversation, in order."""
        self.flush(_SETTLE_SECONDS)
        return self._conversation(conversation_id)

    def search(self, text: str, limit: int = 10) -> list[Exchange]:
        """Full-text search over the prompts and answers of exchanges that ended (an answer
        still streaming is found once it ends), best first; words, not syntax."""
        words = text.split()
        if not words:
            return []
        self.flush(_SETTLE_SECONDS)
        return self._search(words, limit)

    def latest_conversation_id(self) -> str | None:
        latest = self.recent(1)
        return latest[0].conversation_id if latest else None

    def conversations(self, limit: int = 50) -> list[dict[str, Any]]:
        """Conversations, latest first: id, title (first prompt), count, last time."""
        self.flush(_SETTLE_SECONDS)
        return self._conversations(limit)

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        """The messages of a conversation so far, ready to send with a new prompt."""
        return self.last_exchange(conversation_id).history()

    def last_exchange(self, conversation_id: str) -> Exchange:
        """The latest exchange of a conversation; ``InvalidRequest`` if there is none."""
        exchanges = self.conversation(conversation_id)
        if not exchanges:
            raise InvalidRequest(
                f"no conversation with id {conversation_id!r} in {self.describe()}"
            )
        return exchanges[-1]

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued (waiting a while if the database is away), then close."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
        self._close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
