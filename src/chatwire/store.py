"""The conversation log: every exchange, in SQLite, searchable.

One row per exchange: which conversation, when, provider and model, the
messages sent, the answer (whole, or as far as it got), its status
(``complete``, ``interrupted``, ``error``), time to first token, total time
and token counts when the provider reported them. The file lives at
``$CHATWIRE_HOME/logs.db`` (default: the user's data directory).

The database runs in WAL mode, so other processes can read while one writes.
Its schema carries a version and migrates forward on open. A failure to
write (disk full, database locked) never reaches the caller: it is logged
once as a warning on the ``chatwire`` logger, and the answer goes on.
"""

from __future__ import annotations

__all__ = ["Exchange", "Store", "default_path", "logging_disabled"]

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._errors import InvalidRequest

HOME_ENV = "CHATWIRE_HOME"
NO_LOG_ENV = "CHATWIRE_NO_LOG"
STATUSES = ("complete", "interrupted", "error")
_LOCK_WAIT_SECONDS = 1.0

logger = logging.getLogger("chatwire")


def default_path() -> Path:
    """``$CHATWIRE_HOME/logs.db``, else ``logs.db`` in the user's data directory."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "logs.db"
    from platformdirs import user_data_dir

    return Path(user_data_dir("chatwire", appauthor=False)) / "logs.db"


def logging_disabled() -> bool:
    """``CHATWIRE_NO_LOG`` is set to something other than 0/false/no."""
    return os.environ.get(NO_LOG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def new_conversation_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Exchange:
    """One request and its answer, as logged."""

    conversation_id: str
    provider: str
    model: str
    messages: list[dict[str, Any]]
    response: str = ""
    status: str = "complete"
    error: str | None = None
    started_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds")
    )
    first_token_seconds: float | None = None
    total_seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # The answer's tool calls, whole, in OpenAI's message form (None: it called none).
    tool_calls: list[dict[str, Any]] | None = None
    id: int | None = None

    @property
    def prompt(self) -> str:
        """The text of the last message sent: what the user asked."""
        if not self.messages:
            return ""
        content = self.messages[-1].get("content")
        if isinstance(content, list):  # parts: the text ones, joined
            texts = (p.get("text") for p in content if isinstance(p, dict) and "text" in p)
            return "".join(str(text) for text in texts)
        return "" if content is None else str(content)

    def history(self) -> list[dict[str, Any]]:
        """Its messages and its answer: the conversation up to the end of this exchange."""
        messages = list(self.messages)
        if self.tool_calls:
            messages.append(
                {"role": "assistant", "content": self.response or None,
                 "tool_calls": self.tool_calls}
            )  # fmt: skip
        elif self.response:
            messages.append({"role": "assistant", "content": self.response})
        return messages

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
    CREATE TRIGGER exchanges_fts_insert AFTER INSERT ON exchanges BEGIN
        INSERT INTO exchanges_fts (rowid, prompt, response)
        VALUES (new.id, new.prompt, new.response);
    END;
    CREATE TRIGGER exchanges_fts_delete AFTER DELETE ON exchanges BEGIN
        INSERT INTO exchanges_fts (exchanges_fts, rowid, prompt, response)
        VALUES ('delete', old.id, old.prompt, old.response);
    END;
    """,
    "ALTER TABLE exchanges ADD COLUMN tool_calls TEXT;",
)
SCHEMA_VERSION = len(_MIGRATIONS)

_COLUMNS = (
    "id, conversation_id, started_at, provider, model, messages, response, status, error, "
    "first_token_seconds, total_seconds, prompt_tokens, completion_tokens, tool_calls"
)
# The same columns, of the ``exchanges e`` a search joins.
_JOINED_COLUMNS = ", ".join("e." + column.strip() for column in _COLUMNS.split(","))


class Store:
    """A conversation log in one SQLite file; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._warned = False

    # -- connection and schema ---------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
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

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------

    def record(self, exchange: Exchange) -> int | None:
        """Add an exchange; return its id, or ``None`` if it could not be written."""
        if exchange.status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
        values = (
            exchange.conversation_id, exchange.started_at, exchange.provider, exchange.model,
            json.dumps(exchange.messages, ensure_ascii=False), exchange.prompt, exchange.response,
            exchange.status, exchange.error, exchange.first_token_seconds,
            exchange.total_seconds, exchange.prompt_tokens, exchange.completion_tokens,
            None if exchange.tool_calls is None else json.dumps(exchange.tool_calls),
        )  # fmt: skip
        try:
            with self._lock:
                cursor = self._connect().execute(
                    "INSERT INTO exchanges (conversation_id, started_at, provider, model, "
                    "messages, prompt, response, status, error, first_token_seconds, "
                    "total_seconds, prompt_tokens, completion_tokens, tool_calls) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )
        except (sqlite3.Error, OSError) as exc:
            self._warn_once(exc)
            return None
        exchange.id = cursor.lastrowid
        return exchange.id

    def _warn_once(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("chatwire: could not write the conversation log %s: %s", self.path, exc)

    # -- reading -----------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Exchange]:
        with self._lock:
            rows = self._connect().execute(sql, params).fetchall()
        return [_exchange(row) for row in rows]

    def recent(self, limit: int = 10) -> list[Exchange]:
        """The latest exchanges, oldest first."""
        rows = self._query(f"SELECT {_COLUMNS} FROM exchanges ORDER BY id DESC LIMIT ?", (limit,))
        return rows[::-1]

    def conversation(self, conversation_id: str) -> list[Exchange]:
        """Every exchange of one conversation, in order."""
        return self._query(
            f"SELECT {_COLUMNS} FROM exchanges WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )

    def search(self, text: str, limit: int = 10) -> list[Exchange]:
        """Full-text search over prompts and answers (SQLite FTS5), best first."""
        # Quote every word: user text is searched for, not parsed as FTS syntax.
        words = ['"' + word.replace('"', '""') + '"' for word in text.split()]
        if not words:
            return []
        return self._query(
            f"SELECT {_JOINED_COLUMNS} "
            "FROM exchanges_fts JOIN exchanges e ON e.id = exchanges_fts.rowid "
            "WHERE exchanges_fts MATCH ? ORDER BY rank LIMIT ?",
            (" ".join(words), limit),
        )

    def latest_conversation_id(self) -> str | None:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT conversation_id FROM exchanges ORDER BY id DESC LIMIT 1")
                .fetchone()
            )
        return None if row is None else str(row[0])

    def conversations(self, limit: int = 50) -> list[dict[str, Any]]:
        """Conversations, latest first: id, title (first prompt), count, last time."""
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT conversation_id, (SELECT prompt FROM exchanges AS first "
                    "WHERE first.conversation_id = e.conversation_id ORDER BY id LIMIT 1), "
                    "MAX(started_at), COUNT(*) FROM exchanges AS e "
                    "GROUP BY conversation_id ORDER BY MAX(id) DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [
            {"id": cid, "title": title, "updated_at": last, "exchanges": count}
            for cid, title, last, count in rows
        ]

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        """The messages of a conversation so far, ready to send with a new prompt."""
        return self.last_exchange(conversation_id).history()

    def last_exchange(self, conversation_id: str) -> Exchange:
        """The latest exchange of a conversation; ``InvalidRequest`` if there is none."""
        exchanges = self.conversation(conversation_id)
        if not exchanges:
            raise InvalidRequest(f"no conversation with id {conversation_id!r} in {self.path}")
        return exchanges[-1]


def _exchange(row: Sequence[Any]) -> Exchange:
    (id_, cid, started, provider, model, messages, response, status, error,
     first, total, prompt_tokens, completion_tokens, tool_calls) = row  # fmt: skip
    return Exchange(
        conversation_id=cid, provider=provider, model=model, messages=json.loads(messages),
        response=response, status=status, error=error, started_at=started,
        first_token_seconds=first, total_seconds=total, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, id=id_,
        tool_calls=None if tool_calls is None else json.loads(tool_calls),
    )  # fmt: skip


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
        connection.execute("BEGIN IMMEDIATE")
        try:
            current = connection.execute("SELECT version FROM schema_version").fetchone()
            if current is not None and int(current[0]) > step:
                connection.execute("ROLLBACK")  # another process migrated meanwhile
                continue
            for statement in _statements(_MIGRATIONS[step]):
                connection.execute(statement)
            connection.execute("DELETE FROM schema_version")
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (step + 1,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


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


class Recorder:
    """Times one exchange and writes it to a store exactly once when it ends."""

    __slots__ = ("_done", "_first", "_start", "exchange", "store")

    def __init__(self, store: Store, exchange: Exchange) -> None:
        self.store = store
        self.exchange = exchange
        self._start = time.monotonic()
        self._first: float | None = None
        self._done = False

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
        exchange = self.exchange
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
        self.store.record(exchange)


def status_of(error: BaseException | None, text: str, called_tools: bool = False) -> str:
    """How an exchange ended: complete, interrupted (something received, or stopped), or error."""
    if error is None:
        return "complete"
    from ._errors import ChatwireError

    if text or called_tools or not isinstance(error, ChatwireError):
        return "interrupted"  # broken after some text, or stopped (Ctrl-C, cancel, close)
    return "error"
