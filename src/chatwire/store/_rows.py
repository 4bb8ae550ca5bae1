"""What both backends write and read the same way: the columns and the upsert.

The SQL is written with ``?`` placeholders, as SQLite takes them;
PostgreSQL's backend swaps them for ``%s``.
"""

from __future__ import annotations

__all__ = [
    "COLUMNS", "CONVERSATION", "CONVERSATIONS", "WRITTEN", "Row", "abandon_stale",
    "exchange_from", "json_text", "keeps_end", "latest_rows", "row", "row_of", "set_later",
    "upsert_batch", "without_surrogates",
]  # fmt: skip

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

import msgspec

from ._exchange import Exchange, prompt_of

COLUMNS = (
    "id, conversation_id, started_at, provider, model, messages, response, status, error, "
    "first_token_seconds, total_seconds, prompt_tokens, completion_tokens, tool_calls, key"
)

# The columns a batch writes, in the order ``row`` gives each exchange's values.
WRITTEN = (
    "key", "status", "conversation_id", "started_at", "provider", "model", "messages",
    "prompt", "response", "error", "first_token_seconds", "total_seconds", "prompt_tokens",
    "completion_tokens", "tool_calls",
)  # fmt: skip


# What an exchange's later row changes; where and when it began, and what was asked, stay.
_LATER = (
    "provider", "model", "response", "status", "error", "first_token_seconds", "total_seconds",
    "prompt_tokens", "completion_tokens", "tool_calls",
)  # fmt: skip


def set_later(source: str) -> str:
    """The SET list that gives a row what its exchange's later row in ``source`` says."""
    return ", ".join(f"{column} = {source}.{column}" for column in _LATER)


def keeps_end(source: str) -> str:
    """When a later row in ``source`` may update a row: a snapshot of a streaming
    answer (``open``) never overwrites how it ended."""
    return f"exchanges.status = 'open' OR {source}.status <> 'open'"


def upsert_batch(value_of: Callable[[int, str], str], rows: str) -> str:
    """The one statement that upserts a whole batch, by key.

    The database takes the whole batch in one call: as one JSON array
    (``json_text`` of its rows) that it parses itself, with the interpreter's lock
    released, or as bound values. A statement per row would hand the writer
    thread the lock and back once a row, stalling the event loop each time.
    ``rows`` is the backend's table of the batch's rows (its parameters come
    after the replica's); ``value_of(index, column)`` reads one value of a row.
    """
    values = ", ".join(value_of(index, column) for index, column in enumerate(WRITTEN))
    return (
        f"INSERT INTO exchanges ({', '.join(WRITTEN)}, replica) SELECT {values}, ? FROM {rows} "
        f"ON CONFLICT (key) DO UPDATE SET {set_later('excluded')} WHERE {keeps_end('excluded')}"
    )


# One conversation, in the order its exchanges started. Not by id: replicas write in
# batches, and a later turn answered by another replica can be written first.
CONVERSATION = f"SELECT {COLUMNS} FROM exchanges WHERE conversation_id = ? ORDER BY started_at, id"

# Conversations, latest first: id, title (its first prompt), last time, count.
CONVERSATIONS = (
    "SELECT conversation_id, (SELECT prompt FROM exchanges AS first "
    "WHERE first.conversation_id = e.conversation_id ORDER BY started_at, id LIMIT 1), "
    "MAX(started_at), COUNT(*) FROM exchanges AS e "
    "GROUP BY conversation_id ORDER BY MAX(id) DESC LIMIT ?"
)


def abandon_stale(oldest_live_beat: str) -> str:
    """The sweep: open rows of replicas with no beat since ``oldest_live_beat`` (an SQL
    expression, the backend's clock and placeholder) become ``abandoned``."""
    return (
        "UPDATE exchanges SET status = 'abandoned' WHERE status = 'open' AND (replica IS NULL "
        f"OR replica NOT IN (SELECT id FROM replicas WHERE beat_at >= {oldest_live_beat}))"
    )


_encode = msgspec.json.Encoder().encode


def json_text(value: object) -> str:
    """``value`` as JSON text; a lone surrogate, which UTF-8 cannot hold (an upstream's
    JSON can carry one), becomes U+FFFD and the rest of the text is kept."""
    try:
        return _encode(value).decode()
    except UnicodeEncodeError:
        return _encode(without_surrogates(value)).decode()


def without_surrogates(value: object) -> object:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list | tuple):
        return [without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    return value


# One exchange's values of ``WRITTEN``: strings, numbers and None only. Nothing in a
# row changes once it is made, so the writer thread may read and free it.
Row: TypeAlias = tuple[Any, ...]


def row(
    conversation_id: str, started_at: str, provider: str, model: str, messages_json: str,
    prompt: str, response: str, status: str, error: str | None,
    first_token_seconds: float | None, total_seconds: float | None,
    prompt_tokens: int | None, completion_tokens: int | None,
    tool_calls: list[dict[str, Any]] | None, key: str,
) -> Row:  # fmt: skip
    """The values of ``WRITTEN`` for one exchange, its messages already JSON (a
    recorder encodes them once for all of its rows)."""
    return (
        key, status, conversation_id, started_at, provider, model, messages_json, prompt,
        response, error, first_token_seconds, total_seconds, prompt_tokens, completion_tokens,
        None if tool_calls is None else json_text(tool_calls),
    )  # fmt: skip


def row_of(e: Exchange) -> Row:
    """The values of ``WRITTEN`` for an ``Exchange``."""
    return row(
        e.conversation_id, e.started_at, e.provider, e.model, json_text(e.messages),
        prompt_of(e.messages), e.response, e.status, e.error, e.first_token_seconds,
        e.total_seconds, e.prompt_tokens, e.completion_tokens, e.tool_calls, e.key,
    )  # fmt: skip


def latest_rows(rows: Iterable[Row]) -> list[Row]:
    """Rows from ``row``, each exchange once, in the order it first came: how it
    ended, else its last snapshot.

    A batch holds an exchange's start and its end when both came within one
    linger, and a database upserts a row once a statement (PostgreSQL) or pays
    to find which to pass over (SQLite).
    """
    latest: dict[str, Row] = {}
    ended: set[str] = set()
    for values in rows:
        key = values[0]
        if values[1] != "open":
            ended.add(key)
        elif key in ended:
            continue  # a snapshot never undoes an end
        latest[key] = values
    return list(latest.values())


def exchange_from(row: Sequence[Any]) -> Exchange:
    """An ``Exchange`` from a row of ``COLUMNS``."""
    (id_, cid, started, provider, model, messages, response, status, error,
     first, total, prompt_tokens, completion_tokens, tool_calls, key) = row  # fmt: skip
    return Exchange(
        conversation_id=cid, provider=provider, model=model, messages=json.loads(messages),
        response=response, status=status, error=error, started_at=started,
        first_token_seconds=first, total_seconds=total, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, id=id_, key=key,
        tool_calls=None if tool_calls is None else json.loads(tool_calls),
    )  # fmt: skip
