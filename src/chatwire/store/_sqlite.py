"""The log in one SQLite file (the default): WAL, FTS5, many processes on one machine.

The file lives at ``$CHATWIRE_HOME/logs.db`` (default: the user's data
directory). WAL mode lets readers in other processes read while one writes;
writers in several processes (``serve --workers N``) take turns, and one
that finds the file locked waits and tries again rather than losing the
record. The schema carries a version and migrates forward on open.
"""

from __future__ import annotations

__all__ = ["SQLiteStore", "default_path"]

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from ._base import Store
from ._exchange import Exchange
from ._rows import (
    COLUMNS,
    CONVERSATION,
    CONVERSATIONS,
    WRITTEN,
    Row,
    abandon_stale,
    exchange_from,
    upsert_batch,
    without_surrogates,
)
from ._sqlite_schema import immediate, migrate

HOME_ENV = "CHATWIRE_HOME"
_LOCK_WAIT_SECONDS = 1.0
_MAP_BYTES = 1 << 34

# The columns of the ``exchanges e`` a search joins.
_JOINED_COLUMNS = ", ".join("e." + name for name in COLUMNS.split(", "))

_ABANDON_STALE = abandon_stale("?")  # the parameter: the oldest live beat's time

# The most rows one bound statement writes. A batch goes as statements of a power of
# two rows each, up to this many (100 rows: 64, 32 and 4), so eight prepared statements
# serve every batch with no row padded. Preparing is what a few sizes save: SQLite
# takes about 40,000 instructions a row of statement, 5 million for 128 rows.
_CHUNK_ROWS = 128


def _chunk_sizes(count: int) -> list[int]:
    """The sizes of the statements that write ``count`` rows: as many of
    ``_CHUNK_ROWS`` as fit, then the powers of two that make up the rest."""
    rest = count % _CHUNK_ROWS
    return [_CHUNK_ROWS] * (count // _CHUNK_ROWS) + [
        1 << bit for bit in reversed(range(rest.bit_length())) if rest >> bit & 1
    ]


@functools.cache
def _upsert(rows: int) -> str:
    """The upsert of ``rows`` rows of bound values (one of ``_chunk_sizes``)."""
    row = "(" + ", ".join("?" * len(WRITTEN)) + ")"
    # WHERE: in an INSERT's SELECT, SQLite would read ON CONFLICT as a join's ON.
    return upsert_batch(
        lambda index, _: f"column{index + 1}", f"(VALUES {', '.join([row] * rows)}) WHERE true"
    )


def _null(value: None) -> None:
    return value


def _bind_none_as_null() -> None:
    """Let sqlite3 bind ``None`` by an adapter rather than by its fallback.

    CPython's sqlite3 (3.11) looks for an adapter for each ``None`` it binds and,
    finding none, builds and throws away an ``AttributeError``: some 2,000
    instructions a NULL, with the interpreter's lock held, and a bound batch binds
    several a row. This adapter gives the same NULL the short way, for every
    user of sqlite3 in the process alike; one already registered is kept.
    """
    if (type(None), sqlite3.PrepareProtocol) not in sqlite3.adapters:
        sqlite3.register_adapter(type(None), _null)


def default_path() -> Path:
    """``$CHATWIRE_HOME/logs.db``, else ``logs.db`` in the user's data directory."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "logs.db"
    from platformdirs import user_data_dir

    return Path(user_data_dir("chatwire", appauthor=False)) / "logs.db"


class SQLiteStore(Store):
    """The log in one SQLite file."""

    def __init__(self, location: str | os.PathLike[str] | None = None) -> None:
        super().__init__(location)
        if isinstance(location, str) and location.startswith("sqlite://"):
            # As SQLAlchemy reads it: sqlite:///logs.db is relative, sqlite:////tmp/logs.db not.
            location = location.removeprefix("sqlite://").removeprefix("/") or None
        self.path = Path(location) if location is not None else default_path()
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    def describe(self) -> str:
        return str(self.path)

    # -- connection and schema ---------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            assert self.path is not None
            _bind_none_as_null()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=_LOCK_WAIT_SECONDS, check_same_thread=False,
                isolation_level=None,
            )  # fmt: skip
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # Pages read through a memory map rather than copied in by a system call
            # each. A connection drops its cached pages whenever another process has
            # written (``serve --workers N``); reading them back this way, two workers
            # kept 0.962x of no log's throughput against 0.954x, side by side over 8
            # rounds. SQLite caps the size at its build's limit (2 GiB by default).
            connection.execute(f"PRAGMA mmap_size={_MAP_BYTES}")
            migrate(connection)
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- writing -----------------------------------------------------------------

    def _upsert_rows(self, rows: list[Row], replica: str | None) -> None:
        # Bound, not handed over as JSON: SQLite's JSON functions parse a row again
        # for each value they take, and at saturation that cost the writer thread
        # 20-30 us an exchange against 15-23 bound. Binding holds the interpreter's
        # lock, which the event loop needs, for about a microsecond a row.
        with self._lock:
            connection = self._connect()
            try:
                _upsert_all(connection, rows, replica)
            except UnicodeEncodeError:  # a lone surrogate, from an upstream's JSON
                clean = cast("list[list[Any]]", without_surrogates(rows))
                _upsert_all(connection, clean, replica)

    def _id_of(self, key: str) -> int:
        with self._lock:
            row = self._connect().execute("SELECT id FROM exchanges WHERE key = ?", (key,))
            return int(row.fetchone()[0])

    def beat(self, replica: str, stale_after: float) -> int:
        now = time.time()
        with self._lock:
            connection = self._connect()
            with immediate(connection):
                connection.execute(
                    "INSERT INTO replicas (id, beat_at) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at",
                    (replica, now),
                )
                # A trigger indexes the rows it abandons.
                marked = connection.execute(_ABANDON_STALE, (now - stale_after,)).rowcount
                connection.execute("DELETE FROM replicas WHERE beat_at < ?", (now - stale_after,))
        return int(marked)

    # -- reading -----------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Exchange]:
        with self._lock:
            rows = self._connect().execute(sql, params).fetchall()
        return [exchange_from(row) for row in rows]

    def _recent(self, limit: int) -> list[Exchange]:
        rows = self._query(f"SELECT {COLUMNS} FROM exchanges ORDER BY id DESC LIMIT ?", (limit,))
        return rows[::-1]

    def _conversation(self, conversation_id: str) -> list[Exchange]:
        return self._query(CONVERSATION, (conversation_id,))

    def _search(self, words: list[str], limit: int) -> list[Exchange]:
        # Every word quoted: user text is searched for, not parsed as FTS5 syntax.
        quoted = ['"' + word.replace('"', '""') + '"' for word in words]
        return self._query(
            f"SELECT {_JOINED_COLUMNS} "
            "FROM exchanges_fts JOIN exchanges e ON e.id = exchanges_fts.rowid "
            "WHERE exchanges_fts MATCH ? ORDER BY rank LIMIT ?",
            (" ".join(quoted), limit),
        )

    def _conversations(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._connect().execute(CONVERSATIONS, (limit,)).fetchall()
        return [
            {"id": cid, "title": title, "updated_at": last, "exchanges": count}
            for cid, title, last, count in rows
        ]


def _upsert_all(
    connection: sqlite3.Connection, rows: Sequence[Sequence[Any]], replica: str | None
) -> None:
    """Upsert ``rows`` in one transaction (UTF-8 cannot hold a lone surrogate: binding
    one raises ``UnicodeEncodeError``, and nothing of the batch is written)."""
    with immediate(connection):
        at = 0
        for size in _chunk_sizes(len(rows)):
            values: list[Any] = [replica]
            for row in rows[at : at + size]:
                values += row
            connection.execute(_upsert(size), values)
            at += size
