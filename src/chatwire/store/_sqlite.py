"""The log in one SQLite file (the default): WAL, FTS5, many processes on one machine.

The file lives at ``$CHATWIRE_HOME/logs.db`` (default: the user's data
directory). WAL mode lets readers in other processes read while one writes;
writers in several processes (``serve --workers N``) take turns, and one
that finds the file locked waits and tries again rather than losing the
record. The schema carries a version and migrates forward on open.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "SQLiteStore", "default_path"]

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from .._errors import InvalidRequest
from ._base import Store
from ._exchange import Exchange
from ._rows import (
    COLUMNS,
    CONVERSATION,
    CONVERSATIONS,
    WRITTEN,
    abandon_stale,
    batch_text,
    exchange_from,
    upsert_batch,
)

HOME_ENV = "CHATWIRE_HOME"
_LOCK_WAIT_SECONDS = 1.0

# The columns of the ``exchanges e`` a search joins.
_JOINED_COLUMNS = ", ".join("e." + name for name in COLUMNS.split(", "))

# A batch is one JSON array of rows (``row_json``), one an exchange, that SQLite
# takes apart itself, with the interpreter's lock released. (An upsert's SELECT needs
# its WHERE, or SQLite would take ON CONFLICT for a join's.)
_UPSERT = upsert_batch(
    lambda index, _: f"json_extract(value, '$[{index}]')", "json_each(?) WHERE true"
)
_ABANDON_STALE = abandon_stale("?")  # the parameter: the oldest live beat's time

# SQL parses a row's JSON again for each value it takes: that costs more CPU than
# binding the values (``bench/log_write.py``, every batch one way: 58,000 exchanges
# a second against 73,000), but binding holds the interpreter's lock, which the
# event loop needs, for a microsecond or two a row. A batch longer than this means
# the writer has fallen behind (a busy gateway writes some 350 exchanges a linger):
# it is bound.
_JSON_ROWS_MAX = 2048

# The most rows one bound statement writes: 16 parameters a row stay well under
# SQLite's limit of 32,766.
_CHUNK_ROWS = 512
_NULL_ROW = (None,) * len(WRITTEN)

# Bound batches are padded to a power of two up to this, then to a multiple of it: a
# padded row costs about 1 us to bind and drop, so padding 300 rows to 512 would
# cost 200 us a batch for nothing.
_PAD_STEP = 32


def _padded(count: int) -> int:
    """The size of statement that takes ``count`` rows: one of 21 up to ``_CHUNK_ROWS``."""
    if count <= _PAD_STEP:
        return 1 << (count - 1).bit_length()
    return -(-count // _PAD_STEP) * _PAD_STEP


@functools.cache
def _upsert(rows: int) -> str:
    """The upsert of ``rows`` rows of bound values, padded with rows of NULLs, which
    the WHERE drops, up to one of a few sizes (``_padded``), so a few prepared
    statements serve every batch."""
    row = "(" + ", ".join("?" * len(WRITTEN)) + ")"
    return upsert_batch(
        lambda index, _: f"column{index + 1}",
        f"(VALUES {', '.join([row] * rows)}) WHERE column1 IS NOT NULL",
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


_FTS_DELETE_TRIGGER = """
    CREATE TRIGGER exchanges_fts_delete AFTER DELETE ON exchanges BEGIN
        INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, response)
        VALUES ('delete', old.id, old.prompt, old.response);
    END;
"""
_FTS_TRIGGERS = (
    """
    CREATE TRIGGER exchanges_fts_insert AFTER INSERT ON exchanges BEGIN
        INSERT INTO exchanges_fts (rowid, prompt, response)
        VALUES (new.id, new.prompt, new.response);
    END;
"""
    + _FTS_DELETE_TRIGGER
)

# Each entry migrates the schema from version N to N+1; never edit a released one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        messages TEXT NOT NULL,
        prompt TEXT NOT NULL,
        response TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('complete', 'interrupted', 'error')),
        error TEXT,
        first_token_seconds REAL,
        total_seconds REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER
    );
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation_id, id);
    CREATE VIRTUAL TABLE exchanges_fts USING fts5(
        prompt, response, content='exchanges', content_rowid='id'
    );
    """
    + _FTS_TRIGGERS,
    "ALTER TABLE exchanges ADD COLUMN tool_calls TEXT;",
    # Exchanges are written when they start and updated as they stream, by key, from
    # any number of processes; each process's heartbeat says its open rows are alive.
    # SQLite cannot change a CHECK in place: the table is rebuilt, row ids kept (the
    # full-text index refers to them). The writer keeps the index, a batch at a time.
    """
    DROP TRIGGER exchanges_fts_insert;
    DROP TRIGGER exchanges_fts_delete;
    CREATE TABLE exchanges_new (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        messages TEXT NOT NULL,
        prompt TEXT NOT NULL,
        response TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('open', 'complete', 'interrupted', 'error', 'abandoned')),
        error TEXT,
        first_token_seconds REAL,
        total_seconds REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        tool_calls TEXT,
        key TEXT NOT NULL UNIQUE,
        replica TEXT
    );
    INSERT INTO exchanges_new
        SELECT id, conversation_id, started_at, provider, model, messages, prompt, response,
               status, error, first_token_seconds, total_seconds, prompt_tokens,
               completion_tokens, tool_calls, lower(hex(randomblob(16))), NULL
        FROM exchanges;
    DROP TABLE exchanges;
    ALTER TABLE exchanges_new RENAME TO exchanges;
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation_id, id);
    CREATE INDEX exchanges_open ON exchanges (replica) WHERE status = 'open';
    CREATE TABLE replicas (id TEXT PRIMARY KEY, beat_at REAL NOT NULL);
    """
    + _FTS_DELETE_TRIGGER,
    # Open rows leave the full-text index: it holds exchanges once they end.
    """
    DROP TRIGGER exchanges_fts_delete;
    INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, response)
        SELECT 'delete', id, prompt, response FROM exchanges WHERE status = 'open';
    CREATE TRIGGER exchanges_fts_delete AFTER DELETE ON exchanges
    WHEN old.status <> 'open' BEGIN
        INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, response)
        VALUES ('delete', old.id, old.prompt, old.response);
    END;
    """,
    # The status CHECK as equalities. SQLite (3.40) checks ``IN`` with a list of
    # constants by filling a table with the list again for every row it writes:
    # nearly a fifth of the work of writing a row. The table is rebuilt as before.
    """
    DROP TRIGGER exchanges_fts_delete;
    CREATE TABLE exchanges_new (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        messages TEXT NOT NULL,
        prompt TEXT NOT NULL,
        response TEXT NOT NULL,
        status TEXT NOT NULL CHECK (
            status = 'open' OR status = 'complete' OR status = 'interrupted'
            OR status = 'error' OR status = 'abandoned'
        ),
        error TEXT,
        first_token_seconds REAL,
        total_seconds REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        tool_calls TEXT,
        key TEXT NOT NULL UNIQUE,
        replica TEXT
    );
    INSERT INTO exchanges_new
        SELECT id, conversation_id, started_at, provider, model, messages, prompt, response,
               status, error, first_token_seconds, total_seconds, prompt_tokens,
               completion_tokens, tool_calls, key, replica
        FROM exchanges;
    DROP TABLE exchanges;
    ALTER TABLE exchanges_new RENAME TO exchanges;
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation_id, id);
    CREATE INDEX exchanges_open ON exchanges (replica) WHERE status = 'open';
    CREATE TRIGGER exchanges_fts_delete AFTER DELETE ON exchanges
    WHEN old.status <> 'open' BEGIN
        INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, response)
        VALUES ('delete', old.id, old.prompt, old.response);
    END;
    """,
    # Triggers keep the index, holding exchanges once they end (an open row changes
    # with every snapshot). An ended row updated (abandoned, then its end arrives)
    # leaves the index before the update and comes back after it. Statements over a
    # whole batch would parse each row's JSON again to find it: at 700 exchanges a
    # batch, they cost the writer 19 us an exchange, the triggers 15.
    """
    CREATE TRIGGER exchanges_fts_insert AFTER INSERT ON exchanges
    WHEN new.status <> 'open' BEGIN
        INSERT INTO exchanges_fts (rowid, prompt, response)
        VALUES (new.id, new.prompt, new.response);
    END;
    CREATE TRIGGER exchanges_fts_unindex BEFORE UPDATE ON exchanges
    WHEN old.status <> 'open' BEGIN
        INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, response)
        VALUES ('delete', old.id, old.prompt, old.response);
    END;
    CREATE TRIGGER exchanges_fts_index AFTER UPDATE ON exchanges
    WHEN new.status <> 'open' BEGIN
        INSERT INTO exchanges_fts (rowid, prompt, response)
        VALUES (new.id, new.prompt, new.response);
    END;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


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
            _migrate(connection)
            self._connection = connection
        return self._connection

    def _close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- writing -----------------------------------------------------------------

    def _upsert_rows(self, rows: list[bytes], replica: str | None) -> None:
        batch = batch_text(rows)
        # json_extract would cut a text short at a NUL; bound, it is kept whole.
        bound = len(rows) > _JSON_ROWS_MAX or "\\u0000" in batch
        values = _decode_rows(batch) if bound else []
        with self._lock:
            connection = self._connect()
            with _immediate(connection):
                if bound:
                    for at in range(0, len(values), _CHUNK_ROWS):
                        _upsert_chunk(connection, values[at : at + _CHUNK_ROWS], replica)
                else:
                    connection.execute(_UPSERT, (replica, batch))

    def _id_of(self, key: str) -> int:
        with self._lock:
            row = self._connect().execute("SELECT id FROM exchanges WHERE key = ?", (key,))
            return int(row.fetchone()[0])

    def beat(self, replica: str, stale_after: float) -> int:
        now = time.time()
        with self._lock:
            connection = self._connect()
            with _immediate(connection):
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


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring the schema up to ``SCHEMA_VERSION``, one step at a time, atomically."""
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    version = 0 if row is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise InvalidRequest(
            f"the log was written by a newer chatwire (schema {version} > {SCHEMA_VERSION})"
        )
    for step in range(version, SCHEMA_VERSION):
        with _immediate(connection):
            current = connection.execute("SELECT version FROM schema_version").fetchone()
            if current is not None and int(current[0]) > step:
                continue  # another process migrated meanwhile
            for statement in _statements(_MIGRATIONS[step]):
                connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (step + 1,))


_decode_rows = msgspec.json.Decoder(list[list[Any]]).decode


def _upsert_chunk(
    connection: sqlite3.Connection, rows: Sequence[list[Any]], replica: str | None
) -> None:
    padded = _padded(len(rows))
    values: list[Any] = [replica]
    for row in rows:
        values += row
    values += _NULL_ROW * (padded - len(rows))
    connection.execute(_upsert(padded), values)


@contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the write lock from its start: committed at the
    end of the block, rolled back if anything in it raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain semicolons)."""
    statements: list[str] = []
    current = ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements
