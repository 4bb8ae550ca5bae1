"""The conversation log: a real SQLite file, written by real exchanges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import chatwire
from chatwire.store import Exchange, Recorder, Store, _writer, new_conversation_id
from chatwire.store._rows import Row
from chatwire.store._sqlite import _upsert
from chatwire.store._sqlite_schema import MIGRATIONS, SCHEMA_VERSION, statements
from tests.servers import ThreadedServer, refused_url, wait_until

USER = [{"role": "user", "content": "tell me about the sea"}]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same suite on each backend: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        location: str | Path = tmp_path / "logs.db"
    else:
        location = request.getfixturevalue("database")
    with Store(location) as store:
        yield store


@contextlib.contextmanager
def locked(path: Path | None) -> Iterator[None]:
    """The SQLite file at ``path`` held by another connection's exclusive lock."""
    assert path is not None
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def ask(server_url: str, store: Store, **kwargs: object) -> chatwire.Stream:
    return chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", stream=True, base_url=server_url, store=store,
        **kwargs,
    )  # fmt: skip


def test_complete_exchange_is_logged(server: ThreadedServer, store: Store) -> None:
    stream = ask(server.url("/free-chat"), store, conversation_id="conv-1")
    assert "".join(stream) == "Hello, world!"
    (exchange,) = store.recent()
    assert exchange.status == "complete"
    assert exchange.response == "Hello, world!"
    assert (exchange.provider, exchange.model) == ("forefront", "gpt-3.5-turbo")
    assert exchange.messages == USER
    assert exchange.conversation_id == "conv-1"
    assert exchange.error is None
    assert exchange.first_token_seconds is not None
    assert exchange.total_seconds is not None
    assert exchange.total_seconds >= exchange.first_token_seconds >= 0


def test_the_log_keeps_the_messages_as_they_were_sent(server: ThreadedServer, store: Store) -> None:
    messages = [dict(message) for message in USER]
    stream = chatwire.ChatCompletion.create(
        messages=messages, provider="forefront", stream=True, base_url=server.url("/free-chat"),
        store=store,
    )  # fmt: skip
    # The caller goes on with its list while the answer streams: the log is not changed.
    messages[0]["content"] = "something else"
    messages.append({"role": "assistant", "content": "".join(stream)})
    (exchange,) = store.recent()
    assert exchange.messages == USER
    assert exchange.prompt == USER[0]["content"]


def test_whole_text_call_is_logged(server: ThreadedServer, store: Store) -> None:
    text = chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", base_url=server.url("/free-chat"), store=store
    )
    assert store.recent()[0].response == text == "Hello, world!"


def test_broken_stream_keeps_the_partial_text(server: ThreadedServer, store: Store) -> None:
    with pytest.raises(chatwire.StreamInterrupted):
        list(ask(server.url("/drop"), store))
    (exchange,) = store.recent()
    assert exchange.status == "interrupted"
    assert exchange.response == "partial answer"
    assert exchange.error is not None
    assert "connection lost" in exchange.error


def test_stopped_stream_is_interrupted(server: ThreadedServer, store: Store) -> None:
    stream = ask(server.url("/endless"), store)
    first, second = next(stream), next(stream)
    stream.close()
    (exchange,) = store.recent()
    assert exchange.status == "interrupted"
    assert exchange.response == first + second
    assert exchange.error == "stopped before the end"


def test_dropped_stream_is_still_logged(server: ThreadedServer, store: Store) -> None:
    stream = ask(server.url("/endless"), store)
    piece = next(stream)
    del stream
    (exchange,) = store.recent()
    assert (exchange.status, exchange.response) == ("interrupted", piece)


def test_failure_before_any_text_is_an_error(store: Store) -> None:
    with pytest.raises(chatwire.ProviderUnreachable):
        list(ask(refused_url(), store))
    (exchange,) = store.recent()
    assert (exchange.status, exchange.response) == ("error", "")
    assert exchange.error is not None
    assert "cannot connect" in exchange.error


def test_async_exchanges_are_logged(server: ThreadedServer, store: Store) -> None:
    async def main() -> None:
        stream = await chatwire.ChatCompletion.acreate(
            messages=USER, provider="forefront", stream=True, store=store,
            base_url=server.url("/free-chat"),
        )  # fmt: skip
        assert "".join([piece async for piece in stream]) == "Hello, world!"
        cut = await chatwire.ChatCompletion.acreate(
            messages=USER, provider="forefront", stream=True, store=store,
            base_url=server.url("/endless"),
        )  # fmt: skip
        await cut.__anext__()
        await cut.aclose()

    asyncio.run(main())
    statuses = [exchange.status for exchange in store.recent()]
    assert statuses == ["complete", "interrupted"]


def test_library_logs_only_when_asked(server: ThreadedServer, chatwire_home: Path) -> None:
    default = Store(chatwire_home / "logs.db")
    before = len(default.recent(1000)) if default.path.exists() else 0
    chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", base_url=server.url("/free-chat")
    )
    assert (len(default.recent(1000)) if default.path.exists() else 0) == before
    chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", base_url=server.url("/free-chat"), log=True
    )
    assert len(default.recent(1000)) == before + 1


def test_search_history_and_conversations(store: Store) -> None:
    store.record(Exchange("a", "p", "m", USER, response="The sea is salty and deep."))
    store.record(Exchange("b", "p", "m", [{"role": "user", "content": "mountains?"}],
                          response="Tall and cold."))  # fmt: skip
    follow_up = [*USER, {"role": "assistant", "content": "The sea is salty and deep."},
                 {"role": "user", "content": "why salty?"}]  # fmt: skip
    store.record(Exchange("a", "p", "m", follow_up, response="Rivers carry minerals."))
    assert {e.response for e in store.search("salty")} == {
        "The sea is salty and deep.", "Rivers carry minerals."  # in a prompt, or an answer
    }  # fmt: skip
    assert [e.response for e in store.search("deep")] == ["The sea is salty and deep."]
    assert {e.conversation_id for e in store.search("cold mountains")} == {"b"}
    assert store.search('"; DROP TABLE exchanges; --') == []
    assert store.latest_conversation_id() == "a"
    assert store.history("a") == [*follow_up, {"role": "assistant",
                                              "content": "Rivers carry minerals."}]  # fmt: skip
    assert [(c["id"], c["title"], c["exchanges"]) for c in store.conversations()] == [
        ("a", "tell me about the sea", 2), ("b", "mountains?", 1)
    ]  # fmt: skip


def test_a_conversation_reads_in_the_order_its_turns_started(store: Store) -> None:
    # Replicas write in batches: a second turn answered elsewhere may be written first.
    first = Exchange("turns", "p", "m", USER, response="Salty.",
                     started_at="2026-01-01T10:00:00.000+00:00")  # fmt: skip
    follow_up = [*USER, {"role": "assistant", "content": "Salty."},
                 {"role": "user", "content": "why?"}]  # fmt: skip
    second = Exchange("turns", "p", "m", follow_up, response="Rivers.",
                      started_at="2026-01-01T10:00:05.000+00:00")  # fmt: skip
    store.write([second], "replica-b")
    store.write([first], "replica-a")
    assert [e.response for e in store.conversation("turns")] == ["Salty.", "Rivers."]
    assert store.history("turns")[-1] == {"role": "assistant", "content": "Rivers."}
    (listed,) = store.conversations()
    assert (listed["title"], listed["exchanges"]) == ("tell me about the sea", 2)


def test_migrates_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with Store(path) as store:
        assert store.recent() == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_log_of_the_first_schema_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as connection:
        for statement in statements(MIGRATIONS[0]):
            connection.execute(statement)
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (1)")
        connection.execute(
            "INSERT INTO exchanges (conversation_id, started_at, provider, model, messages, "
            "prompt, response, status) VALUES ('old', '2025-01-01', 'local', 'm', "
            "'[{\"role\": \"user\", \"content\": \"hi\"}]', 'hi', 'hello', 'complete')"
        )
    with Store(path) as store:
        (old,) = store.conversation("old")
        assert (old.response, old.tool_calls) == ("hello", None)
        assert store.search("hello")[0].conversation_id == "old"
        calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
        store.record(Exchange("new", "p", "m", [{"role": "user", "content": "x"}],
                              tool_calls=calls))  # fmt: skip
        assert store.conversation("new")[0].tool_calls == calls
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )


def _build_schema(connection: sqlite3.Connection, version: int) -> None:
    """The log's schema as chatwire left it at ``version``."""
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version VALUES (?)", (version,))
    for step in range(version):
        for statement in statements(MIGRATIONS[step]):
            connection.execute(statement)


def test_a_log_of_schema_3_takes_its_open_rows_out_of_the_index(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as connection:
        _build_schema(connection, 3)
        for key, status in (("k-open", "open"), ("k-done", "complete")):
            rowid = connection.execute(
                "INSERT INTO exchanges (conversation_id, started_at, provider, model, messages, "
                "prompt, response, status, key, replica) VALUES ('c', '2026-01-01', 'p', 'm', "
                "'[]', 'whales', 'sing', ?, ?, 'r')",
                (status, key),
            ).lastrowid
            # Schema 3 indexed every row, open ones too.
            connection.execute(
                "INSERT INTO exchanges_fts (rowid, prompt, response) VALUES (?, 'whales', 'sing')",
                (rowid,),
            )
    with Store(path) as store:
        assert [e.key for e in store.search("whales")] == ["k-done"]
        store.write([Exchange("c", "p", "m", [], response="sing", key="k-open")])
        assert sorted(e.key for e in store.search("whales")) == ["k-done", "k-open"]
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO exchanges_fts (exchanges_fts) VALUES ('integrity-check')")
        connection.execute("DELETE FROM exchanges")  # the trigger unindexes what is indexed
        connection.execute("INSERT INTO exchanges_fts (exchanges_fts) VALUES ('integrity-check')")


def test_a_log_of_schema_4_checks_the_status_without_a_table_per_row(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    with sqlite3.connect(path) as connection:
        _build_schema(connection, 4)
        rowid = connection.execute(
            "INSERT INTO exchanges (conversation_id, started_at, provider, model, messages, "
            "prompt, response, status, key, replica) VALUES ('c', '2026-01-01', 'p', 'm', "
            "'[]', 'whales', 'sing', 'complete', 'k-4', 'r')"
        ).lastrowid
        connection.execute(
            "INSERT INTO exchanges_fts (rowid, prompt, response) VALUES (?, 'whales', 'sing')",
            (rowid,),
        )
    with Store(path) as store:
        (kept,) = store.search("whales")
        assert (kept.id, kept.key, kept.response) == (rowid, "k-4", "sing")
        store.write([Exchange("c", "p", "m", [], response="sings", key="k-4")])
        assert [e.response for e in store.search("sings")] == ["sings"]
    with sqlite3.connect(path) as connection:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            connection.execute(
                "INSERT INTO exchanges (conversation_id, started_at, provider, model, messages, "
                "prompt, response, status, key) VALUES ('c', '', 'p', 'm', '[]', '', '', "
                "'bogus', 'k-bad')"
            )
        # The batch's upsert checks each row's status by comparisons, with no table
        # of the allowed values made again for every row: its one ephemeral table
        # holds the rows it inserts, as SQLite does for a table with triggers.
        upsert = _upsert(1)
        program = connection.execute("EXPLAIN " + upsert, [None] * upsert.count("?"))
        assert [step[1] for step in program].count("OpenEphemeral") == 1
        connection.execute("INSERT INTO exchanges_fts (exchanges_fts) VALUES ('integrity-check')")


def test_a_postgresql_log_of_schema_1_migrates_and_gives_open_rows_no_words(
    database: str,
) -> None:
    import psycopg

    from chatwire.store import _postgres

    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(_postgres._MIGRATIONS[0])
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (1)")
        for key, status in (("k-open", "open"), ("k-done", "complete")):
            connection.execute(
                "INSERT INTO exchanges (conversation_id, started_at, provider, model, messages, "
                "prompt, response, status, key, replica) VALUES ('c', '2026-01-01', 'p', 'm', "
                "'[]', 'whales', 'sing', %s, %s, 'r')",
                (status, key),
            )
    with Store(database) as store:
        assert [e.key for e in store.search("whales")] == ["k-done"]
        store.write([Exchange("c", "p", "m", [], response="sing along", key="k-open")])
        assert [e.key for e in store.search("along")] == ["k-open"]
        streaming = Exchange("c", "p", "m", USER, response="whales sing", status="open")
        store.write([streaming], "r")  # a snapshot: its words wait for its end
    with psycopg.connect(database) as connection:
        words = connection.execute("SELECT key, words IS NULL FROM exchanges ORDER BY id")
        assert words.fetchall() == [("k-open", False), ("k-done", False), (streaming.key, True)]
        version = connection.execute("SELECT version FROM schema_version").fetchone()
        assert version == (_postgres.SCHEMA_VERSION,)


def test_refuses_a_log_from_a_newer_chatwire(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (999)")
    with pytest.raises(chatwire.InvalidRequest, match="newer chatwire"):
        Store(path).recent()


def test_a_reader_in_another_process_while_writing(store: Store) -> None:
    store.recent()  # create the file and schema
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            from chatwire.store import Exchange, Store
            store = Store({store.location!r})
            for n in range(300):
                store.record(Exchange("w", "p", "m", [{{"role": "user", "content": str(n)}}],
                                      response="answer " + str(n)))
        """)],
    )  # fmt: skip
    seen: list[int] = []
    while writer.poll() is None:
        seen.append(len(store.recent(1000)))
    assert writer.wait() == 0
    assert seen == sorted(seen)  # every read saw a consistent, growing log
    assert len(store.recent(1000)) == 300


def test_a_locked_database_neither_breaks_the_answer_nor_loses_it(
    server: ThreadedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path / "locked.db") as store:
        store.recent()
        with locked(store.path), caplog.at_level(logging.WARNING, logger="chatwire"):
            first = "".join(ask(server.url("/free-chat"), store))
            second = "".join(ask(server.url("/free-chat"), store))
            # The writer finds the file locked, says so once, and keeps the records.
            assert wait_until(lambda: not store.health()["reachable"])
            assert store.health()["queued"] >= 2
        assert first == second == "Hello, world!"
        assert store.flush(60)
        assert [(e.status, e.response) for e in store.recent()] == [("complete", first)] * 2
        assert store.health() == {"reachable": True, "queued": 0, "dropped": 0}
    warnings = [r for r in caplog.records if "could not write the conversation log" in r.message]
    assert len(warnings) == 1  # reported once, not per exchange or per retry
    assert "locked" in warnings[0].getMessage()


def test_an_answer_is_searchable_once_it_ends(store: Store) -> None:
    streaming = Exchange("s", "p", "m", USER, response="the tide is turning", status="open")
    store.write([streaming], "a-replica")
    assert store.search("tide") == []  # still streaming: not indexed yet
    ended = Exchange("s", "p", "m", USER, response="the tide is turning now", key=streaming.key)
    store.write([ended], "a-replica")
    assert [(e.key, e.response) for e in store.search("tide")] == [
        (streaming.key, "the tide is turning now")
    ]
    # A snapshot arriving after the end changes nothing, in the rows or the index.
    store.write([streaming], "a-replica")
    assert [(e.status, e.response) for e in store.search("turning")] == [
        ("complete", "the tide is turning now")
    ]
    orphan = Exchange("o", "p", "m", USER, response="lost at sea", status="open")
    store.write([orphan], "a-replica-that-died")
    assert store.beat("me", 10.0) == 1  # its replica never beat: abandoned, with its text
    assert [(e.status, e.response) for e in store.search("lost")] == [("abandoned", "lost at sea")]
    # Its end arriving after all: the index holds the text it ended with, not both.
    found = Exchange("o", "p", "m", USER, response="found again", key=orphan.key)
    store.write([found], "a-replica-that-died")
    assert store.search("lost") == []
    assert [(e.status, e.response) for e in store.search("found")] == [("complete", "found again")]
    if store.path is not None:
        with sqlite3.connect(store.path) as connection:  # FTS5 checks its index is whole
            connection.execute(
                "INSERT INTO exchanges_fts (exchanges_fts) VALUES ('integrity-check')"
            )


def test_text_a_database_cannot_hold_is_replaced_and_the_rest_kept(store: Store) -> None:
    # An upstream's JSON can carry a lone surrogate, which UTF-8 cannot hold, or a NUL,
    # which PostgreSQL keeps in no text column; the log keeps everything around them.
    odd = "before\x00between\ud800after"
    exchange = Exchange("n", "p", "m", [{"role": "user", "content": odd}], response=odd)
    assert store.record(exchange) is not None
    (logged,) = store.conversation("n")
    nul = "\x00" if store.path is not None else "\ufffd"
    assert logged.response == f"before{nul}between\ufffdafter"
    assert logged.messages[0]["content"] == "before\x00between\ufffdafter"  # JSON keeps it
    literal = "a backslash, then u0000: \\u0000"  # text, not an escape: kept as it is
    assert store.record(Exchange("n", "p", "m", USER, response=literal)) is not None
    assert store.conversation("n")[-1].response == literal


def test_batches_of_any_size_are_written_whole(store: Store) -> None:
    # SQLite binds a batch as statements of 128 rows, then of the powers of two that
    # make up the rest.
    sizes = [1, 2, 3, 31, 32, 33, 127, 128, 129, 300, 1100]
    for size in sizes:
        batch = [
            Exchange(f"b{size}", "p", "m", USER, response=f"answer {size} {n} whale")
            for n in range(size)
        ]  # fmt: skip
        store.write(batch, "r")
        assert [e.response for e in store.conversation(f"b{size}")] == [e.response for e in batch]
    assert len(store.search("whale", limit=5000)) == sum(sizes)


def test_an_exchange_twice_in_a_batch_is_written_as_it_ended(store: Store) -> None:
    # A batch can hold an exchange's start, snapshots and end; a snapshot never wins
    # over the end, whichever comes last.

    def state(status: str, text: str, key: str) -> Exchange:
        return Exchange("twice", "p", "m", USER, response=text, status=status, key=key)

    # Keys are read from each row's first bytes; a quote or a backslash in one
    # (escaped in JSON) must not make two exchanges one, nor one two.
    quoted, quoted_too, slashed = 'k-"3",', 'k-"5', "k-4\\"
    store.write([
        state("open", "", "k-1"), state("open", "so", "k-1"), state("open", "", quoted),
        state("complete", "so far", "k-1"), state("complete", "done", "k-2"),
        state("open", "do", "k-2"), state("open", "", slashed), state("open", "ab", slashed),
        state("error", "cut", quoted), state("open", "a", "k-4"),
        state("complete", "five", quoted_too),
    ])  # fmt: skip
    logged = sorted(store.conversation("twice"), key=lambda e: e.id or 0)
    assert [(e.key, e.status, e.response) for e in logged] == [  # in the order they first came
        ("k-1", "complete", "so far"), (quoted, "error", "cut"), ("k-2", "complete", "done"),
        (slashed, "open", "ab"), ("k-4", "open", "a"), (quoted_too, "complete", "five"),
    ]  # fmt: skip


def test_a_batch_ends_rows_already_written_beside_new_ones(store: Store) -> None:
    # PostgreSQL updates the rows a batch finds and inserts the rest: one batch ends an
    # answer written open before, brings a late snapshot of one that ended, and a new one.
    def state(status: str, text: str, key: str) -> Exchange:
        return Exchange("mixed", "p", "m", USER, response=text, status=status, key=key)

    store.write([state("open", "the whales", "k-a"), state("complete", "krill", "k-b")], "r")
    store.write([
        state("complete", "the whales sing", "k-a"), state("open", "kr", "k-b"),
        state("complete", "plankton", "k-c"),
    ], "r")  # fmt: skip
    logged = sorted(store.conversation("mixed"), key=lambda e: e.id or 0)
    assert [(e.key, e.status, e.response) for e in logged] == [
        ("k-a", "complete", "the whales sing"), ("k-b", "complete", "krill"),
        ("k-c", "complete", "plankton"),
    ]  # fmt: skip
    assert [e.key for e in store.search("whales sing")] == ["k-a"]
    assert [e.key for e in store.search("krill")] == ["k-b"]
    assert [e.key for e in store.search("plankton")] == ["k-c"]


def test_sqlite_keeps_each_value_its_type(tmp_path: Path) -> None:
    # Rows reach the writer as JSON, then are bound: NULLs stay NULL, numbers numbers.
    full = Exchange(
        "types", "p", "m", USER, response="r", first_token_seconds=0.25, total_seconds=2.0,
        prompt_tokens=3, completion_tokens=4, tool_calls=[{"id": "t", "type": "function"}],
    )  # fmt: skip
    with Store(tmp_path / "logs.db") as store:
        store.write([full, Exchange("types", "p", "m", USER, response="r")], "r")
        first, _ = store.conversation("types")
        assert first.to_json() == {**full.to_json(), "id": 1}
    with sqlite3.connect(tmp_path / "logs.db") as connection:
        types = connection.execute(
            "SELECT typeof(error), typeof(first_token_seconds), typeof(total_seconds), "
            "typeof(prompt_tokens), typeof(tool_calls), typeof(messages) FROM exchanges "
            "ORDER BY id"
        ).fetchall()
    assert types == [
        ("null", "real", "real", "integer", "text", "text"),
        ("null", "null", "null", "null", "null", "text"),
    ]


@pytest.mark.parametrize("registered", [False, True])
def test_sqlite_binds_none_as_null_keeping_an_adapter_registered_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered: bool
) -> None:
    # The log registers an adapter for None (binding one otherwise costs CPython an
    # exception); a program's own, registered before, stays.
    key = (type(None), sqlite3.PrepareProtocol)
    monkeypatch.delitem(sqlite3.adapters, key, raising=False)
    programs = lambda value: value  # noqa: E731
    if registered:
        monkeypatch.setitem(sqlite3.adapters, key, programs)
    with Store(tmp_path / "logs.db") as store:
        store.write([Exchange("nulls", "p", "m", USER, response="r")], "r")
        (written,) = store.conversation("nulls")
    assert (written.error, written.prompt_tokens, written.tool_calls) == (None, None, None)
    assert (sqlite3.adapters[key] is programs) is registered
    assert sqlite3.adapters[key](None) is None


def test_a_recorder_is_written_as_it_stands_and_ends_once(store: Store) -> None:
    recorder = Recorder(store, "as-it-stands", "first-choice", "m", USER)
    assert store.flush(60)
    (opened,) = store.conversation("as-it-stands")
    assert (opened.status, opened.provider, opened.response) == ("open", "first-choice", "")

    recorder.first_piece("fallback", "m2")  # a later provider of a fallback list answered
    usage = {"usage": {"prompt_tokens": 7, "completion_tokens": 2}}
    recorder.pieces.append("an answer")
    recorder.finish(None, usage)
    recorder.finish(RuntimeError("ignored"), {})
    assert store.flush(60)
    (ended,) = store.conversation("as-it-stands")
    assert (ended.status, ended.provider, ended.model, ended.response) == (
        "complete", "fallback", "m2", "an answer"
    )  # fmt: skip
    assert (ended.prompt_tokens, ended.completion_tokens) == (7, 2)
    assert ended.first_token_seconds is not None
    assert ended.total_seconds is not None
    assert 0 <= ended.first_token_seconds <= ended.total_seconds
    assert (ended.key, ended.started_at) == (opened.key, opened.started_at)
    assert {**recorder.exchange.to_json(), "id": ended.id} == ended.to_json()


def test_an_answer_just_begun_is_not_taken_for_dead_by_another_replica(store: Store) -> None:
    recorder = Recorder(store, "just-begun", "p", "m", USER)
    assert store.flush(60)  # its start is written
    # Another replica sweeps at once: this one beat before it wrote its first row.
    assert store.beat("another-replica", _writer.STALE_SECONDS) == 0
    (opened,) = store.conversation("just-begun")
    assert opened.status == "open"
    recorder.pieces.append("alive")
    recorder.finish(None, {})
    assert store.flush(60)
    assert [(e.status, e.response) for e in store.conversation("just-begun")] == [
        ("complete", "alive")
    ]


def test_a_flush_that_comes_while_the_writer_writes_is_answered_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No beat (nor snapshot) for an hour: only the flush can end the writer's rest.
    monkeypatch.setattr(_writer, "FLUSH_SECONDS", 3600.0)
    with Store(tmp_path / "logs.db") as store:
        writing, go_on = threading.Event(), threading.Event()
        upsert_rows = store._upsert_rows

        def held(rows: list[Row], replica: str | None) -> None:
            writing.set()
            go_on.wait()
            upsert_rows(rows, replica)

        store._upsert_rows = held  # type: ignore[method-assign]
        recorder = Recorder(store, "flushed", "p", "m", USER)
        assert writing.wait(60)  # the writer's first look writes the start: held there
        flushed: list[bool] = []
        flusher = threading.Thread(target=lambda: flushed.append(store.flush(60)))
        flusher.start()
        assert wait_until(lambda: store.writer._flushing == 1)  # it came mid-write
        go_on.set()
        flusher.join()
        assert flushed == [True]
        recorder.finish(None, {})


def test_a_full_queue_drops_records_counts_them_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path / "full.db") as store:
        store.recent()
        store.writer.capacity = 4
        # The writer can write nothing. Each exchange ends at once: its end is its one
        # record (its start too, had the writer looked meanwhile, then written whatever
        # the queue holds).
        with locked(store.path), caplog.at_level(logging.WARNING, logger="chatwire"):
            for number in range(12):
                recorder = Recorder(store, "q", "p", "m", USER)
                recorder.pieces.append(f"answer {number}")
                recorder.finish(None, {})
            health = store.health()
            assert health["queued"] >= 4  # the first four ends, and those whose start was in
            assert health["dropped"] >= 1
            assert health["queued"] + health["dropped"] == 12
        assert [r.getMessage() for r in caplog.records if "not keeping up" in r.getMessage()] == [
            f"chatwire: the conversation log {store.path} is not keeping up: 1 record(s) dropped"
        ]
        assert store.flush(60)
        assert store.health() == {"reachable": True, "queued": 0, "dropped": health["dropped"]}
        # Every exchange is in the log, whole, or counted as dropped.
        logged = store.recent(20)
        assert len(logged) == health["queued"]
        assert {e.status for e in logged} == {"complete"}
        assert [e.response for e in logged][:4] == [f"answer {n}" for n in range(4)]


def test_an_end_that_finds_the_queue_full_is_written_when_its_start_was_taken(
    tmp_path: Path,
) -> None:
    with Store(tmp_path / "full.db") as store:
        recorders = [Recorder(store, "q", "p", "m", USER) for _ in range(2)]
        assert store.flush(60)
        assert [e.status for e in store.recent(10)] == ["open", "open"]
        store.writer.capacity = 2
        with locked(store.path):
            for number in (2, 3):  # two ends that fill the queue
                filler = Recorder(store, "q", "p", "m", USER)
                filler.pieces.append(f"answer {number}")
                filler.finish(None, {})
            for number, recorder in enumerate(recorders):  # each end finds the queue full
                recorder.pieces.append(f"answer {number}")
                recorder.finish(None, {})
            assert store.health()["queued"] == 4  # two ends, two beyond the capacity
        assert store.flush(60)
        assert store.health() == {"reachable": True, "queued": 0, "dropped": 0}
        assert sorted((e.status, e.response) for e in store.recent(10)) == [
            ("complete", f"answer {number}") for number in range(4)
        ]


def test_conversation_ids_grow_with_time_and_are_unguessable() -> None:
    before = time.time_ns() // 1_000_000
    cid = new_conversation_id()
    after = time.time_ns() // 1_000_000
    assert len(cid) == 27
    assert before <= int(cid[:11], 16) <= after
    assert len({new_conversation_id()[11:] for _ in range(1000)}) == 1000
    # A forked worker draws random bytes of its own, not the rest of its parent's page.
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(writing, new_conversation_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(reading, 64).decode()[11:] != new_conversation_id()[11:]
    os.close(reading)
    os.close(writing)


def test_an_exchange_time_is_iso_8601_in_utc() -> None:
    before = datetime.now(UTC)
    started = Exchange("t", "p", "m", USER).started_at
    after = datetime.now(UTC)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= (
        datetime.fromisoformat(started)
    ) <= after  # fmt: skip
    assert started.endswith("+00:00")
    assert len(started) == len("2026-01-01T00:00:00.000+00:00")
