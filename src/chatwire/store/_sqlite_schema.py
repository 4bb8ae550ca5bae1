"""The SQLite log's schema: its migrations, each a step from one version to the next,
and the write transaction they (and the store's writes) run in."""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "immediate", "migrate", "statements"]

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from .._errors import InvalidRequest

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
MIGRATIONS: tuple[str, ...] = (
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
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection) -> None:
    """Bring the schema up to ``SCHEMA_VERSION``, one step at a time, atomically."""
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = connection.execute("SELECT version FROM schema_version").fetchone()
    version = 0 if row is None else int(row[0])
    if version > SCHEMA_VERSION:
        raise InvalidRequest(
            f"the log was written by a newer chatwire (schema {version} > {SCHEMA_VERSION})"
        )
    for step in range(version, SCHEMA_VERSION):
        with immediate(connection):
            current = connection.execute("SELECT version FROM schema_version").fetchone()
            if current is not None and int(current[0]) > step:
                continue  # another process migrated meanwhile
            for statement in statements(MIGRATIONS[step]):
                connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (step + 1,))


@contextmanager
def immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the write lock from its start: committed at the
    end of the block, rolled back if anything in it raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def statements(script: str) -> list[str]:
    """Split a migration script into statements (triggers contain semicolons)."""
    found: list[str] = []
    current = ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            found.append(current.strip())
            current = ""
    return found
