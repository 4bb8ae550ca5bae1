"""More than one gateway process on one log: replicas on PostgreSQL, workers on SQLite.

Every gateway here is ``chatwire serve`` in a subprocess, in front of the
loopback scripted server; the log is a database of the session's PostgreSQL
cluster (Debian's package) or a SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from chatwire.store import Exchange, Store
from tests.postgres import PostgresCluster
from tests.servers import Served, ThreadedServer, serve, wait_until

KEY = "replica-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
WHOLE = "Hello, world!"


def replica(server: ThreadedServer, database: str, path: str = "/free-chat") -> Any:
    """``chatwire serve`` logging to ``database``, in front of the scripted ``path``."""
    return serve(
        "-p", "forefront", "-o", f"base_url={server.url(path)}", "--api-key", KEY,
        env={"CHATWIRE_DATABASE_URL": database}, log=True,
    )  # fmt: skip


def ask(gateway: Served, content: str, conversation: str | None = None) -> httpx.Response:
    headers = {**AUTH, **({"X-Chatwire-Conversation": conversation} if conversation else {})}
    body = {"messages": [{"role": "user", "content": content}], "stream": True}
    return httpx.post(gateway.url("/v1/chat/completions"), json=body, headers=headers, timeout=60)


def streamed_text(response: httpx.Response) -> str:
    text = ""
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            choices = json.loads(line[len("data: ") :])["choices"]
            text += "".join(choice["delta"].get("content") or "" for choice in choices)
    return text


async def many_streams(gateways: list[Served], count: int) -> list[tuple[int, str]]:
    """``count`` streamed requests, taking the gateways in turn, 50 at a time."""
    limit = asyncio.Semaphore(50)
    async with httpx.AsyncClient(headers=AUTH, timeout=120) as client:

        async def one(number: int) -> tuple[int, str]:
            body = {"messages": [{"role": "user", "content": f"question {number}"}],
                    "stream": True}  # fmt: skip
            async with limit:
                gateway = gateways[number % len(gateways)]
                reply = await client.post(gateway.url("/v1/chat/completions"), json=body)
            return reply.status_code, streamed_text(reply)

        return await asyncio.gather(*(one(number) for number in range(count)))


def settled(store: Store, count: int) -> list[Exchange]:
    """The log's exchanges once ``count`` of them have ended (the writers lag by moments)."""
    ended = lambda: [e for e in store.recent(count + 10) if e.status != "open"]  # noqa: E731
    assert wait_until(lambda: len(ended()) >= count)
    return store.recent(count + 10)


def test_two_replicas_share_one_log(server: ThreadedServer, database: str) -> None:
    with replica(server, database) as first, replica(server, database) as second:
        answers = asyncio.run(many_streams([first, second], 500))
        assert answers == [(200, WHOLE)] * 500

        # A conversation begun on one replica goes on on the other.
        turn_one = ask(first, "Name a sea.", conversation="across")
        turn_two = ask(second, "And another?", conversation="across")
        assert (turn_one.headers["X-Chatwire-Conversation"],
                turn_two.headers["X-Chatwire-Conversation"]) == ("across", "across")  # fmt: skip
        with Store(database) as store:
            exchanges = settled(store, 502)
        read_back = [
            httpx.get(gateway.url("/v1/conversations/across"), headers=AUTH).json()
            for gateway in (first, second)
        ]
    # Every exchange is logged once, whole.
    assert len(exchanges) == 502
    questions = sorted(e.prompt for e in exchanges if e.prompt.startswith("question"))
    assert questions == sorted(f"question {number}" for number in range(500))
    assert {(e.status, e.response) for e in exchanges} == {("complete", WHOLE)}
    assert read_back[0] == read_back[1]
    asked = [e["messages"][-1]["content"] for e in read_back[0]["exchanges"]]
    assert asked == ["Name a sea.", "And another?"]


def test_a_replica_killed_mid_answer_leaves_its_text_abandoned(
    server: ThreadedServer, database: str
) -> None:
    with Store(database) as store:
        with replica(server, database, "/endless") as doomed, replica(server, database):
            body = {"messages": [{"role": "user", "content": "go on"}], "stream": True}
            url = doomed.url("/v1/chat/completions")
            with httpx.stream("POST", url, json=body, headers=AUTH, timeout=60) as response:
                lines = response.iter_lines()
                assert any("t3 " in line for line in lines)  # the answer is streaming
                # Its text so far reaches the log while it streams, then the replica dies.
                assert wait_until(lambda: any(e.response for e in store.recent(1)))
                flushed = store.recent(1)[0]
                assert flushed.status == "open"
                doomed.process.kill()
            # The surviving replica marks it once the dead one's heartbeat has stopped.
            assert wait_until(lambda: store.recent(1)[0].status == "abandoned", within=120)
        (exchange,) = store.recent(10)
        assert [e.key for e in store.search("t1 t2")] == [exchange.key]  # ended, so indexed
    assert exchange.response.startswith(flushed.response)
    assert exchange.response.startswith("t0 t1 t2 ")


def test_answers_go_on_while_the_database_is_down(
    server: ThreadedServer, postgres: PostgresCluster, database: str
) -> None:
    with replica(server, database) as gateway:
        health = lambda: httpx.get(gateway.url("/healthz")).json()["log"]  # noqa: E731
        assert wait_until(lambda: health()["reachable"])
        before = [ask(gateway, f"before {number}") for number in range(5)]
        postgres.stop()
        try:
            assert wait_until(lambda: not health()["reachable"])
            during = [ask(gateway, f"during {number}") for number in range(20)]
            assert health()["queued"] > 0  # waiting for the database, not dropped
        finally:
            postgres.start()
        assert wait_until(lambda: health() == {"reachable": True, "queued": 0, "dropped": 0})
        after = [ask(gateway, f"after {number}") for number in range(5)]
        with Store(database) as store:
            exchanges = settled(store, 30)
    assert [streamed_text(reply) for reply in before + during + after] == [WHOLE] * 30
    assert sorted(e.prompt for e in exchanges) == sorted(
        [f"before {n}" for n in range(5)] + [f"during {n}" for n in range(20)]
        + [f"after {n}" for n in range(5)]
    )  # fmt: skip
    assert {(e.status, e.response) for e in exchanges} == {("complete", WHOLE)}


def test_two_workers_share_the_sqlite_file(server: ThreadedServer, tmp_path: Path) -> None:
    log = tmp_path / "logs.db"
    with serve(
        "-p", "forefront", "-o", f"base_url={server.url('/free-chat')}", "--api-key", KEY,
        "--workers", "2", env={"CHATWIRE_HOME": str(tmp_path)}, log=True,
    ) as gateway:  # fmt: skip
        answers = asyncio.run(many_streams([gateway], 300))
        assert answers == [(200, WHOLE)] * 300
        with Store(log) as store:
            exchanges = settled(store, 300)
        health = httpx.get(gateway.url("/healthz")).json()["log"]
    assert len(exchanges) == 300
    assert {(e.status, e.response) for e in exchanges} == {("complete", WHOLE)}
    assert health["dropped"] == 0
    with sqlite3.connect(log) as connection:
        writers = connection.execute("SELECT COUNT(DISTINCT replica) FROM exchanges").fetchone()
    assert writers == (2,)  # both workers answered, and both wrote
