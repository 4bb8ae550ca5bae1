"""What both backends write and read the same way: the columns and the upsert.

The SQL is written with ``?`` placeholders, as SQLite takes them;
PostgreSQL's backend swaps them for ``%s``.
"""

from __future__ import annotations

__all__ = [
    "COLUMNS", "CONVERSATIONS", "WRITTEN", "batch_json", "exchange_from", "keys_json",
    "upsert_batch",
]  # fmt: skip

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from ._exchange import Exchange

COLUMNS = (
    "id, conversation_id, started_at, provider, model, messages, response, status, error, "
    "first_token_seconds, total_seconds, prompt_tokens, completion_tokens, tool_calls, key"
)

# The columns a batch writes, in the order ``batch_json`` lays out each row's values.
WRITTEN = (
    "conversation_id", "started_at", "provider", "model", "messages", "prompt", "response",
    "status", "error", "first_token_seconds", "total_seconds", "prompt_tokens",
    "completion_tokens", "tool_calls", "key",
)  # fmt: skip


def upsert_batch(value_of: Callable[[int, str], str], rows: str) -> str:
    """The one statement that upserts a whole batch, by key.

    The batch is one JSON parameter (``batch_json``), so the database reads it in
    one call: a statement per row would hand the writer thread the interpreter's
    lock and back once a row, stalling the event loop each time. ``rows`` is the
    backend's table of the batch's rows (taking the replica's parameter, then the
    batch's); ``value_of(index, column)`` reads one value of a row. A snapshot of a
    streaming answer (``open``) never overwrites how it ended.
    """
    values = ", ".join(value_of(index, column) for index, column in enumerate(WRITTEN))
    return (
        f"INSERT INTO exchanges ({', '.join(WRITTEN)}, replica) SELECT {values}, ? FROM {rows} "
        "ON CONFLICT (key) DO UPDATE SET provider = excluded.provider, "
        "model = excluded.model, response = excluded.response, status = excluded.status, "
        "error = excluded.error, first_token_seconds = excluded.first_token_seconds, "
        "total_seconds = excluded.total_seconds, prompt_tokens = excluded.prompt_tokens, "
        "completion_tokens = excluded.completion_tokens, tool_calls = excluded.tool_calls "
        "WHERE exchanges.status = 'open' OR excluded.status <> 'open'"
    )


# Conversations, latest first: id, title (its first prompt), last time, count.
CONVERSATIONS = (
    "SELECT conversation_id, (SELECT prompt FROM exchanges AS first "
    "WHERE first.conversation_id = e.conversation_id ORDER BY id LIMIT 1), "
    "MAX(started_at), COUNT(*) FROM exchanges AS e "
    "GROUP BY conversation_id ORDER BY MAX(id) DESC LIMIT ?"
)


_encode = msgspec.json.Encoder().encode
# A NUL escaped in JSON: after an even run of backslashes, so not an escaped backslash.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _json(value: object) -> str:
    """``value`` as JSON text any database column takes.

    No database keeps a NUL in text (SQLite's JSON reader ends the string
    there) and UTF-8 has no lone surrogates, yet an upstream's JSON can carry
    both: they become U+FFFD, and the rest of the text is kept.
    """
    try:
        text = _encode(value).decode()
    except UnicodeEncodeError:  # a lone surrogate
        text = _encode(_without_surrogates(value)).decode()
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text


def _without_surrogates(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list | tuple):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def batch_json(exchanges: Iterable[Exchange]) -> str:
    """The rows ``upsert_batch`` writes: one JSON array of each exchange's values."""
    return _json([
        (
            e.conversation_id, e.started_at, e.provider, e.model, _json(e.messages), e.prompt,
            e.response, e.status, e.error, e.first_token_seconds, e.total_seconds,
            e.prompt_tokens, e.completion_tokens,
            None if e.tool_calls is None else _json(e.tool_calls), e.key,
        )
        for e in exchanges
    ])  # fmt: skip


def keys_json(exchanges: Iterable[Exchange]) -> str:
    """The exchanges' keys, as one JSON array."""
    return _json([exchange.key for exchange in exchanges])


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
