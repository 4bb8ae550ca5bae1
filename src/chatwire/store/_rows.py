"""What both backends write and read the same way: the columns and the upsert.

The SQL is written with ``?`` placeholders, as SQLite takes them;
PostgreSQL's backend swaps them for ``%s``.
"""

from __future__ import annotations

__all__ = ["COLUMNS", "CONVERSATIONS", "UPSERT", "exchange_from", "row_values"]

import json
from collections.abc import Sequence
from typing import Any

from ._exchange import Exchange

COLUMNS = (
    "id, conversation_id, started_at, provider, model, messages, response, status, error, "
    "first_token_seconds, total_seconds, prompt_tokens, completion_tokens, tool_calls, key"
)

# A snapshot of a streaming answer (``open``) never overwrites how it ended.
UPSERT = (
    "INSERT INTO exchanges (conversation_id, started_at, provider, model, messages, prompt, "
    "response, status, error, first_token_seconds, total_seconds, prompt_tokens, "
    "completion_tokens, tool_calls, key, replica) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET provider = excluded.provider, model = excluded.model, "
    "response = excluded.response, status = excluded.status, error = excluded.error, "
    "first_token_seconds = excluded.first_token_seconds, "
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


def row_values(exchange: Exchange, replica: str | None) -> tuple[Any, ...]:
    """The values ``UPSERT`` writes, in its order."""
    return (
        exchange.conversation_id, exchange.started_at, exchange.provider, exchange.model,
        json.dumps(exchange.messages, ensure_ascii=False), exchange.prompt, exchange.response,
        exchange.status, exchange.error, exchange.first_token_seconds,
        exchange.total_seconds, exchange.prompt_tokens, exchange.completion_tokens,
        None if exchange.tool_calls is None else json.dumps(exchange.tool_calls),
        exchange.key, replica,
    )  # fmt: skip


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
