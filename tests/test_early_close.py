"""Stopping early closes the connection at once; nothing is left behind.

Each test opens a stream on an endless server route, stops it one way or
another, and counts the connections the server still has open.
"""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

import chatwire
from tests.servers import ScriptedServer, ThreadedServer

USER = [{"role": "user", "content": "go on forever"}]


@pytest.fixture
def endless(server: ThreadedServer, server_app: ScriptedServer) -> ThreadedServer:
    assert server.wait_for_connections(0) == 0
    return server


async def connections_after_settling(server: ThreadedServer) -> int:
    """Let the event loop run (no blocking wait) until the server has no connection."""
    for _ in range(500):
        if server.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    return server.open_connections


def open_stream(server: ThreadedServer) -> chatwire.Stream:
    return chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", stream=True, base_url=server.url("/endless")
    )


def test_close(endless: ThreadedServer) -> None:
    stream = open_stream(endless)
    assert next(stream).startswith("t0")
    assert endless.open_connections == 1
    stream.close()
    assert endless.wait_for_connections(0) == 0
    stream.close()  # twice is fine


def test_with_block(endless: ThreadedServer) -> None:
    with open_stream(endless) as stream:
        for count, _ in enumerate(stream):
            if count == 3:
                break
        assert endless.open_connections == 1
    assert endless.wait_for_connections(0) == 0


def test_break_and_drop(endless: ThreadedServer) -> None:
    threads_before = threading.active_count()
    for count, _ in enumerate(open_stream(endless)):
        if count == 2:
            break
    assert endless.wait_for_connections(0) == 0
    assert threading.active_count() == threads_before


def test_garbage_collection(endless: ThreadedServer, server_app: ScriptedServer) -> None:
    disconnects = server_app.disconnects
    stream = open_stream(endless)
    next(stream)
    del stream
    gc.collect()
    assert endless.wait_for_connections(0) == 0
    # The server saw the client leave, so the work behind the stream stopped.
    deadline_loops = 500
    while server_app.disconnects == disconnects and deadline_loops:
        deadline_loops -= 1
        threading.Event().wait(0.01)
    assert server_app.disconnects == disconnects + 1


def test_async_aclose_and_context(endless: ThreadedServer) -> None:
    async def main() -> int:
        stream = await chatwire.ChatCompletion.acreate(
            messages=USER, provider="forefront", stream=True, base_url=endless.url("/endless")
        )
        async with stream:
            await stream.__anext__()
            assert endless.open_connections == 1
        await stream.aclose()
        assert await connections_after_settling(endless) == 0
        return len(asyncio.all_tasks())

    assert asyncio.run(main()) == 1  # only main() itself is left


def test_async_break_and_drop(endless: ThreadedServer) -> None:
    async def main() -> int:
        stream = await chatwire.ChatCompletion.acreate(
            messages=USER, provider="forefront", stream=True, base_url=endless.url("/endless")
        )
        count = 0
        async for _ in stream:
            count += 1
            if count == 3:
                break
        del stream
        # The event loop finalises the dropped async generator on its next turns.
        return await connections_after_settling(endless)

    assert asyncio.run(main()) == 0


def test_async_task_cancellation(endless: ThreadedServer) -> None:
    async def main() -> int:
        started = asyncio.Event()

        async def consume() -> None:
            stream = await chatwire.ChatCompletion.acreate(
                messages=USER, provider="forefront", stream=True, base_url=endless.url("/endless")
            )
            async for _ in stream:
                started.set()

        task = asyncio.create_task(consume())
        await started.wait()
        assert endless.open_connections == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await connections_after_settling(endless) == 0
        return len(asyncio.all_tasks())

    assert asyncio.run(main()) == 1
