"""Real HTTP servers on 127.0.0.1 for the tests (uvicorn in a thread).

``ScriptedServer`` speaks the Forefront free-chat protocol at ``/free-chat``
and misbehaves on purpose at other paths, one fault per path. It records
every request and exposes the number of open connections, so tests can
assert on what went over the wire and on what was left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


# What /tool-calls answers: two calls, as a whole message would hold them.
TOOL_CALLS: list[dict[str, Any]] = [
    {"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"id": "call_2", "type": "function",
     "function": {"name": "get_time", "arguments": '{"zone": "Europe/Paris"}'}},
]  # fmt: skip


def sse(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta_event(text: str) -> bytes:
    return sse({"delta": text})


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int]  # the client's address: one per connection

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ScriptedServer:
    """The ASGI app; ``pieces`` is what ``/free-chat`` streams back."""

    pieces: list[str] = field(default_factory=lambda: ["Hello", ", ", "world", "!"])
    requests: list[Recorded] = field(default_factory=list)
    events_sent_after_disconnect: int = 0
    disconnects: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        client = tuple(scope["client"])
        self.requests.append(Recorded(scope["method"], scope["path"], headers, body, client))
        # The first path segment picks the behaviour, so an OpenAI-style client
        # posting to BASE/chat/completions reaches the same faults.
        route = scope["path"].strip("/").split("/")[0].replace("-", "_")
        handler = getattr(self, "route_" + route, None)
        if handler is None:
            await self._respond(send, 404, b"no such path")
            return
        await handler(receive, send)

    async def _respond(self, send: Send, status: int, body: bytes, headers: Any = ()) -> None:
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})

    async def _start_stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})

    async def _chunk(self, send: Send, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    async def _end(self, send: Send) -> None:
        await send({"type": "http.response.body", "body": b""})

    async def _until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnects += 1

    # -- well-behaved ---------------------------------------------------

    async def route_free_chat(self, receive: Receive, send: Send) -> None:
        await self._start_stream(send)
        for piece in self.pieces:
            await self._chunk(send, delta_event(piece))
        await self._end(send)

    async def route_compatible(self, receive: Receive, send: Send) -> None:
        """OpenAI-compatible: a whole ``chat.completion`` unless the request asks to stream."""
        if self.requests[-1].json.get("stream"):
            await self.route_openai(receive, send)
            return
        message = {"role": "assistant", "content": "".join(self.pieces)}
        body = {
            "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }  # fmt: skip
        headers = [(b"content-type", b"application/json")]
        await self._respond(send, 200, json.dumps(body).encode(), headers)

    async def route_openai(self, receive: Receive, send: Send) -> None:
        """An OpenAI-style stream: role, content deltas, finish, usage, [DONE]."""
        await self._start_stream(send)
        head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in self.pieces]
        for delta in deltas:
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            await self._chunk(send, sse({**head, "choices": [choice]}))
        await self._chunk(send, sse({**head, "choices": [{"index": 0, "delta": {},
                                                          "finish_reason": "stop"}]}))  # fmt: skip
        usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        await self._chunk(send, sse({**head, "choices": [], "usage": usage}))
        await self._chunk(send, b"data: [DONE]\n\n")
        await self._end(send)

    async def route_tool_calls(self, receive: Receive, send: Send) -> None:
        """OpenAI-compatible: an answer that calls two tools, streamed in pieces or whole."""
        head = {"id": "c2", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        if not self.requests[-1].json.get("stream"):
            message = {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS}
            body = {**head, "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls"}]}  # fmt: skip
            await self._respond(send, 200, json.dumps(body).encode(),
                                [(b"content-type", b"application/json")])  # fmt: skip
            return
        await self._start_stream(send)
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
        for index, call in enumerate(TOOL_CALLS):
            arguments = call["function"]["arguments"]
            opening = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            deltas.append({"tool_calls": [opening]})
            for start in range(0, len(arguments), 5):  # the arguments in pieces
                piece = {"index": index, "function": {"arguments": arguments[start : start + 5]}}
                deltas.append({"tool_calls": [piece]})
        for delta in deltas:
            choice = {"index": 0, "delta": delta, "finish_reason": None}
            await self._chunk(send, sse({**head, "choices": [choice]}))
        finish = {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
        await self._chunk(send, sse({**head, "choices": [finish]}))
        await self._chunk(send, b"data: [DONE]\n\n")
        await self._end(send)

    async def route_endless(self, receive: Receive, send: Send) -> None:
        """Streams one event every 10 ms until the client goes away."""
        events = (delta_event(f"t{count} ") for count in range(3000))
        await self._stream_until_disconnect(receive, send, events, pause=0.01)

    async def route_once_then_endless(self, receive: Receive, send: Send) -> None:
        """The usual answer the first time; after that, an endless one."""
        if self._hit("once_then_endless") < 1:
            await self.route_free_chat(receive, send)
        else:
            await self.route_endless(receive, send)

    async def _stream_until_disconnect(
        self, receive: Receive, send: Send, chunks: Iterator[bytes], pause: float
    ) -> None:
        """Send ``chunks`` one per ``pause`` until they run out or the client goes away."""
        disconnected = asyncio.Event()

        async def watch() -> None:
            await self._until_disconnect(receive)
            disconnected.set()

        watcher = asyncio.ensure_future(watch())
        await self._start_stream(send)
        for chunk in chunks:
            if disconnected.is_set():
                break
            await self._chunk(send, chunk)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(disconnected.wait(), pause)
        watcher.cancel()

    # -- faults ---------------------------------------------------------

    def _hit(self, route: str) -> int:
        """How many times ``route`` was asked before this request."""
        seen = self.hits.get(route, 0)
        self.hits[route] = seen + 1
        return seen

    async def route_flaky(self, receive: Receive, send: Send) -> None:
        """503 for the first two requests, then a normal answer."""
        if self._hit("flaky") < 2:
            await self._respond(send, 503, b'{"error": {"message": "warming up"}}')
        else:
            await self.route_free_chat(receive, send)

    async def route_rate_limited_once(self, receive: Receive, send: Send) -> None:
        if self._hit("rate_limited_once") < 1:
            await self._respond(send, 429, b"wait", [(b"retry-after", b"0.05")])
        else:
            await self.route_free_chat(receive, send)

    async def route_unauthorized(self, receive: Receive, send: Send) -> None:
        await self._respond(send, 401, b'{"error": {"message": "bad key"}}')

    async def route_error_500(self, receive: Receive, send: Send) -> None:
        await self._respond(send, 500, b'{"error": {"message": "the model fell over"}}')

    async def route_rate_limited(self, receive: Receive, send: Send) -> None:
        await self._respond(send, 429, b"slow down", [(b"retry-after", b"7")])

    async def route_stall_headers(self, receive: Receive, send: Send) -> None:
        """Never answers at all, until the client gives up."""
        await self._until_disconnect(receive)

    async def route_stall_body(self, receive: Receive, send: Send) -> None:
        """Sends one event, then nothing, until the client gives up."""
        await self._start_stream(send)
        await self._chunk(send, delta_event("first words"))
        await self._until_disconnect(receive)

    async def route_drop(self, receive: Receive, send: Send) -> None:
        """Sends two events, then drops the connection mid-stream."""
        await self._start_stream(send)
        await self._chunk(send, delta_event("partial "))
        await self._chunk(send, delta_event("answer"))
        await asyncio.sleep(0.05)
        raise ConnectionAbortedError("dropped on purpose")

    async def route_garbage(self, receive: Receive, send: Send) -> None:
        await self._start_stream(send)
        await self._chunk(send, delta_event("fine "))
        await self._chunk(send, b"data: {this is not json\n\n")
        await self._end(send)

    async def route_bad_utf8(self, receive: Receive, send: Send) -> None:
        await self._start_stream(send)
        await self._chunk(send, delta_event("fine "))
        await self._chunk(send, b'data: {"delta": "\xff\xfe broken"}\n\n')
        await self._end(send)

    async def route_huge_line(self, receive: Receive, send: Send) -> None:
        """Some text, then a 10 MB line that never ends."""
        await self._start_stream(send)
        await self._chunk(send, delta_event("fine "))
        block = b"x" * (1 << 20)
        for _ in range(10):
            await self._chunk(send, block)
        await self._end(send)

    async def route_no_delta(self, receive: Receive, send: Send) -> None:
        """Well-formed JSON events, none of which carries text."""
        await self._start_stream(send)
        await self._chunk(send, sse({"status": "thinking"}))
        await self._chunk(send, sse({"choices": []}))
        await self._end(send)

    async def route_garbage_together(self, receive: Receive, send: Send) -> None:
        """Good events and a bad one in the same network chunk."""
        await self._start_stream(send)
        await self._chunk(send, delta_event("one ") + delta_event("two ") + b"data: {oops\n\n")
        await self._end(send)

    async def route_trickle(self, receive: Receive, send: Send) -> None:
        """One byte every 50 ms, until the client leaves: bytes keep coming, and
        lines never complete within a short read timeout (stops by itself after 60 s)."""
        line = b'data: {"delta": "too slow"}\n\n'
        trickle = (bytes([line[i % len(line)]]) for i in range(1200))
        await self._stream_until_disconnect(receive, send, trickle, pause=0.05)


class ThreadedServer:
    """Runs an ASGI app on uvicorn, on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve()

        asyncio.run(serve())

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.005)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        return len(self._server.server_state.connections)

    def task_count(self) -> int:
        """The asyncio tasks alive on the server's event loop (asked on that loop)."""
        assert self._loop is not None

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return asyncio.run_coroutine_threadsafe(count(), self._loop).result(timeout=10)

    def wait_for_tasks(self, count: int, within: float = 10.0) -> int:
        """Wait until at most ``count`` tasks are alive (or give up); return the count."""
        deadline = time.monotonic() + within
        while (alive := self.task_count()) > count and time.monotonic() < deadline:
            time.sleep(0.01)
        return alive

    def wait_for_connections(self, count: int, within: float = 10.0) -> int:
        """Wait until ``count`` connections are open (or give up); return the count."""
        deadline = time.monotonic() + within
        while self.open_connections != count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_connections


def wait_until(condition: Callable[[], bool], within: float = 60.0) -> bool:
    """Wait for ``condition`` to hold; ``within`` only ends a wait that went wrong."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/free-chat"


@contextlib.contextmanager
def running(app: Any) -> Iterator[ThreadedServer]:
    with ThreadedServer(app) as server:
        yield server


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def serve(*args: str, env: dict[str, str] | None = None, log: bool = False) -> Iterator[Served]:
    """``chatwire serve ARGS`` as a subprocess on a free loopback port, once it answers.

    Without ``log`` it keeps none; with it, the log its environment names.
    """
    port = free_port()
    quiet = () if log else ("--no-log",)
    process = subprocess.Popen(
        [shutil.which("chatwire") or "chatwire", "serve", *quiet, "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    served = Served(process, port)
    try:
        started = wait_until(
            lambda: process.poll() is not None or _answers(served.url("/healthz")), within=120
        )
        assert started
        assert process.poll() is None, process.communicate()[1]
        yield served
    finally:
        process.terminate()
        process.communicate(timeout=30)
