"""The log in PostgreSQL: one database many gateway replicas write and read.

The same rows as the SQLite file, through psycopg 3 and its connection
pool; full-text search over a generated ``tsvector`` column with a GIN
index (the ``simple`` configuration: words as written, any case, as SQLite's
FTS5 reads them). Migrations run under an advisory lock, so replicas
starting together migrate once. Heartbeats use the database's clock, so the
replicas' own clocks need not agree.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

import os
import re
import threading
from collections.abc import Sequence
from typing import Any

from .._errors import InvalidRequest
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
    json_text,
    keeps_end,
    set_later,
    upsert_batch,
)

# Each entry migrates the schema from version N to N+1; never edit a released one.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE exchanges (
        id BIGSERIAL PRIMARY KEY,
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
        first_token_seconds DOUBLE PRECISION,
        total_seconds DOUBLE PRECISION,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        tool_calls TEXT,
        key TEXT NOT NULL UNIQUE,
        replica TEXT,
        words TSVECTOR GENERATED ALWAYS AS
            (to_tsvector('simple', prompt || ' ' || response)) STORED
    );
    CREATE INDEX exchanges_by_conversation ON exchanges (conversation_id, id);
    CREATE INDEX exchanges_words ON exchanges USING GIN (words);
    CREATE INDEX exchanges_open ON exchanges (replica) WHERE status = 'open';
    CREATE TABLE replicas (id TEXT PRIMARY KEY, beat_at TIMESTAMPTZ NOT NULL);
    """,
    # A streaming answer's row is written again at every snapshot, and its words were
    # computed each time: an answer growing to 670 characters cost the server 66 us a
    # snapshot, 16 without them. A search reads only ended rows; an open row has none.
    """
    ALTER TABLE exchanges DROP COLUMN words;
    ALTER TABLE exchanges ADD COLUMN words TSVECTOR GENERATED ALWAYS AS (CASE
        WHEN status <> 'open' THEN to_tsvector('simple', prompt || ' ' || response) END) STORED;
    CREATE INDEX exchanges_words ON exchanges USING GIN (words);
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
_MIGRATION_LOCK = 0x63686174  # the advisory lock replicas take to migrate: "chat"
_POOL_TIMEOUT_SECONDS = 5.0


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


_CASTS = {
    "first_token_seconds": "float8", "total_seconds": "float8",
    "prompt_tokens": "integer", "completion_tokens": "integer",
}  # fmt: skip


def _value_of(index: int, column: str) -> str:
    cast = _CASTS.get(column)
    return f"(item->>{index})::{cast}" if cast else f"item->>{index}"


# A NUL escaped in JSON: after an even run of backslashes, so not an escaped backslash
# followed by "u0000".
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")

# Heartbeats use the database's clock (the parameter: seconds without a beat).
_ABANDON_STALE = abandon_stale("now() - make_interval(secs => %s)")

# The batch is one JSON parameter, one row an exchange, then the replica. The rows of
# exchanges already written (an answer is written open before it ends, unless it ends
# first) are updated, and only the others inserted: an upsert that finds its row
# computes the generated words twice, for the row it would have inserted and for the
# update, and to_tsvector alone took the server 110 us for a 200-word answer.
_BATCH_VALUES = ", ".join(
    f"{_value_of(index, column)} AS {column}" for index, column in enumerate(WRITTEN)
)
_UPSERT = _pg(
    "WITH batch AS MATERIALIZED (SELECT "
    f"{_BATCH_VALUES} FROM jsonb_array_elements(?::jsonb) AS element (item)), "
    f"updated AS (UPDATE exchanges SET {set_later('batch')} FROM batch "
    f"WHERE exchanges.key = batch.key AND ({keeps_end('batch')}) RETURNING exchanges.key) "
    + upsert_batch(
        lambda index, column: column,
        "batch WHERE NOT EXISTS (SELECT FROM updated WHERE updated.key = batch.key)",
    )
)


class PostgresStore(Store):
    """The log in a PostgreSQL database named by a ``postgresql://`` URL."""

    def __init__(self, location: str | os.PathLike[str] | None = None) -> None:
        super().__init__(location)
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise InvalidRequest(
                "a PostgreSQL log needs psycopg: pip install 'chatwire[postgres]'"
            ) from None
        self.url = str(location)
        self._lock = threading.Lock()
        self._pool: Any = None

    @property
    def location(self) -> str:
        return self.url

    def describe(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(self.url)
        except Exception:
            return "a PostgreSQL database (its URL does not parse)"
        user = f"{parts['user']}@" if parts.get("user") else ""
        port = f":{parts['port']}" if parts.get("port") else ""
        return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"

    # -- connection and schema ---------------------------------------------------

    def _connection(self) -> Any:
        """A pooled connection's context. Each statement commits on its own (a batch is
        one statement, so one round trip); statements that belong together take
        ``connection.transaction()``."""
        with self._lock:
            if self._pool is None:
                from psycopg_pool import ConnectionPool

                pool = ConnectionPool(
                    self.url, min_size=1, max_size=4, open=False,
                    timeout=_POOL_TIMEOUT_SECONDS, check=ConnectionPool.check_connection,
                    kwargs={"connect_timeout": 5, "autocommit": True}, name="chatwire-log",
                )  # fmt: skip
                pool.open(wait=False)
                try:
                    with pool.connection() as connection:
                        _migrate(connection)
                except BaseException:
                    pool.close()
                    raise
                self._pool = pool
        return self._pool.connection()

    def _close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    # -- writing -----------------------------------------------------------------

    def _upsert_rows(self, rows: list[Row], replica: str | None) -> None:
        batch = json_text(rows)  # one JSON array, which the statement reads
        if "\\u0000" in batch:  # PostgreSQL keeps no NUL in text: U+FFFD stands in
            batch = _ESCAPED_NUL.sub(r"\1\\ufffd", batch)
        with self._connection() as connection:
            connection.execute(_UPSERT, (batch, replica))

    def _id_of(self, key: str) -> int:
        with self._connection() as connection:
            row = connection.execute("SELECT id FROM exchanges WHERE key = %s", (key,))
            return int(row.fetchone()[0])

    def beat(self, replica: str, stale_after: float) -> int:
        with self._connection() as connection, connection.transaction():
            connection.execute(
                "INSERT INTO replicas (id, beat_at) VALUES (%s, now()) "
                "ON CONFLICT (id) DO UPDATE SET beat_at = now()",
                (replica,),
            )
            marked = connection.execute(_ABANDON_STALE, (stale_after,)).rowcount
            connection.execute(
                "DELETE FROM replicas WHERE beat_at < now() - make_interval(secs => %s)",
                (stale_after,),
            )
        return int(marked)

    # -- reading -----------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Exchange]:
        with self._connection() as connection:
            rows = connection.execute(sql, params).fetchall()
        return [exchange_from(row) for row in rows]

    def _recent(self, limit: int) -> list[Exchange]:
        sql = f"SELECT {COLUMNS} FROM exchanges ORDER BY id DESC LIMIT %s"
        return self._query(sql, (limit,))[::-1]

    def _conversation(self, conversation_id: str) -> list[Exchange]:
        return self._query(_pg(CONVERSATION), (conversation_id,))

    def _search(self, words: list[str], limit: int) -> list[Exchange]:
        # plainto_tsquery reads the words as words (every one required), never as syntax.
        return self._query(
            f"SELECT {COLUMNS} FROM exchanges, plainto_tsquery('simple', %s) AS query "
            "WHERE words @@ query AND status <> 'open' "
            "ORDER BY ts_rank(words, query) DESC, id LIMIT %s",
            (" ".join(words), limit),
        )

    def _conversations(self, limit: int) -> list[dict[str, Any]]:
        with self._connection() as connection:
            rows = connection.execute(_pg(CONVERSATIONS), (limit,)).fetchall()
        return [
            {"id": cid, "title": title, "updated_at": last, "exchanges": count}
            for cid, title, last, count in rows
        ]


def _migrate(connection: Any) -> None:
    """Bring the schema up to ``SCHEMA_VERSION`` in one transaction, one replica at a time."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise InvalidRequest(
                f"the log was written by a newer chatwire (schema {version} > {SCHEMA_VERSION})"
            )
        for step in range(version, SCHEMA_VERSION):
            connection.execute(_MIGRATIONS[step])
        if version < SCHEMA_VERSION:
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
