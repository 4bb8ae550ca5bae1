"""End-to-end streaming over loopback HTTP: chatwire against the seed and httpx-sse.

A server in a subprocess (its own GIL) listens on 127.0.0.1 at a free port and
answers ``POST /free-chat`` with a Forefront-style stream of short
``{"delta": ...}`` events, in one of two shapes:

- bulk: the whole answer at once, in 64 KiB chunked-encoding frames, so the
  server is never the bottleneck; reported as text pieces per second (the
  best run). This is the decoder's ceiling.
- paced: one event per frame and per write, a millisecond apart, as a model
  server sends tokens; each read brings one event. Wall time is the server's,
  so this reports the client's CPU time per event (the best run).

Six clients read the whole answer, taking turns, several times:

- seed: the seed's own Forefront provider (requests, ``iter_lines``);
- chatwire: chatwire's Forefront provider, ``forefront._create_completion``,
  called exactly as the seed's function is;
- ChatCompletion: the same through ``ChatCompletion.create(provider="forefront",
  stream=True)``, which adds validation and the ``Stream`` wrapper;
- httpx-sse: ``httpx_sse.connect_sse`` on one ``httpx.Client`` kept for the
  whole bench (chatwire keeps its connections too), plus ``json.loads`` of
  each event;
- chatwire-async and httpx-sse-async: ``ChatCompletion.acreate`` and
  ``httpx_sse.aconnect_sse`` on one ``httpx.AsyncClient``, both on one event
  loop kept for the whole bench.

All must yield the same pieces. The server stops when the bench ends (or
when its parent dies, or after a time limit), and a watchdog bounds the run.

Run: ``python bench/wire.py [--events N] [--paced-events N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from _env import ensure_venv, stop

HOST = "127.0.0.1"
PATH = "/free-chat"
SEED = 20240501
FRAME = 64 << 10
SERVER_LIFETIME = 900.0  # the server exits on its own after this many seconds
BENCH_LIMIT = 600.0  # the bench aborts (and so stops the server) after this
MESSAGES = [{"role": "user", "content": "hi"}]
# The seed's request body for MESSAGES, for the httpx-sse client to send.
BODY = {
    "text": "hi",
    "action": "noauth",
    "id": "",
    "parentId": "",
    "workspaceId": "",
    "messagePersona": "607e41fe-95be-497e-8e97-010a59b2e2c0",
    "model": "gpt-4",
    "messages": [],
    "internetMode": "auto",
}

WORDS = (" the", " stream", " of", " tokens", ",", ".", " model", " data", "\n", " é", " 日本")


def deltas(count: int) -> list[str]:
    """The answer the server streams: ``count`` short, non-empty pieces."""
    rng = random.Random(SEED)
    return [rng.choice(WORDS) for _ in range(count)]


# --- the server (runs in a subprocess) ---------------------------------------


def chunked_frames(count: int, paced: bool) -> list[bytes]:
    """The response body in chunked-encoding frames (one event each when paced), plus the end."""
    events = [
        b"data: " + json.dumps({"delta": text}, ensure_ascii=False).encode() + b"\n\n"
        for text in deltas(count)
    ]
    if paced:
        pieces = events
    else:
        body = b"".join(events)
        pieces = [body[i : i + FRAME] for i in range(0, len(body), FRAME)]
    frames = [b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces]
    frames.append(b"0\r\n\r\n")
    return frames


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: list[bytes], pace: float
) -> None:
    """Serve requests on one connection until the client closes or asks to."""
    try:
        while True:
            try:
                request = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # the client closed between requests (or sent junk)
            first, *lines = request.decode("latin-1").split("\r\n")
            method, target, version = first.split(" ", 2)
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "transfer-encoding" in headers:
                writer.write(
                    head("411 Length Required", {"Content-Length": "0", "Connection": "close"})
                )
                return  # a body without a length can't be skipped safely
            await reader.readexactly(int(headers.get("content-length", "0")))
            close = version != "HTTP/1.1" or headers.get("connection", "").lower() == "close"
            connection = "close" if close else "keep-alive"
            if method == "POST" and target == PATH:
                writer.write(
                    head(
                        "200 OK",
                        {
                            "Content-Type": "text/event-stream; charset=utf-8",
                            "Cache-Control": "no-store",
                            "Transfer-Encoding": "chunked",
                            "Connection": connection,
                        },
                    )
                )
                for frame in frames:
                    writer.write(frame)
                    await writer.drain()
                    if pace:
                        await asyncio.sleep(pace)
            else:
                writer.write(
                    head("404 Not Found", {"Content-Length": "0", "Connection": connection})
                )
                await writer.drain()
            if close:
                return
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass  # a client that went away mid-request, or a malformed request line
    finally:
        writer.close()


async def serve(count: int, pace: float) -> None:
    frames = chunked_frames(count, paced=pace > 0)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, frames, pace), HOST, 0, limit=64 << 10
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.serve_forever(), SERVER_LIFETIME)


def run_server(count: int, pace: float) -> None:
    # The parent holds our stdin open; when it closes (parent done or dead), exit.
    def exit_on_eof() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_on_eof, daemon=True).start()
    asyncio.run(serve(count, pace))


def start_server(count: int, pace: float) -> tuple[subprocess.Popen[bytes], str]:
    """The server process and its URL, once it is listening."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--events", str(count), "--pace", str(pace)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    line = process.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        stop_server(process)
        raise RuntimeError("the bench server did not start")
    return process, f"http://{HOST}:{int(line)}{PATH}"


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()
    stop(process, timeout=10)


# --- the clients --------------------------------------------------------------


def seed_client(url: str) -> Iterator[str]:
    import _seed_forefront

    _seed_forefront.URL = url
    pieces: Iterator[str] = _seed_forefront._create_completion("gpt-4", MESSAGES, True)
    return pieces


def provider_client(url: str) -> Iterator[str]:
    from chatwire.providers import forefront

    # The provider function, called exactly as the seed's is.
    return forefront._create_completion("gpt-3.5-turbo", MESSAGES, True, base_url=url)


def chatwire_client(url: str) -> Iterator[str]:
    import chatwire

    pieces: Iterator[str] = chatwire.ChatCompletion.create(
        messages=MESSAGES, provider="forefront", stream=True, base_url=url
    )
    return pieces


_httpx_clients: list[object] = []  # the one client, made on first use


def httpx_sse_client(url: str) -> Iterator[str]:
    import httpx
    import httpx_sse

    if not _httpx_clients:
        _httpx_clients.append(httpx.Client(timeout=60))
    client = _httpx_clients[0]
    assert isinstance(client, httpx.Client)
    with httpx_sse.connect_sse(client, "POST", url, json=BODY) as source:
        for event in source.iter_sse():
            yield json.loads(event.data)["delta"]


# The async clients share one event loop for the whole bench, so that each
# keeps its connections between reads as a long-lived program does.
_loop: list[asyncio.AbstractEventLoop] = []


def _on_loop(work: Any) -> list[str]:
    if not _loop:
        _loop.append(asyncio.new_event_loop())
    pieces: list[str] = _loop[0].run_until_complete(work)
    return pieces


def chatwire_async_client(url: str) -> Iterator[str]:
    import chatwire

    async def collect() -> list[str]:
        stream = await chatwire.ChatCompletion.acreate(
            messages=MESSAGES, provider="forefront", stream=True, base_url=url
        )
        return [piece async for piece in stream]

    return iter(_on_loop(collect()))


_async_httpx_clients: list[object] = []


def httpx_sse_async_client(url: str) -> Iterator[str]:
    import httpx
    import httpx_sse

    async def collect() -> list[str]:
        if not _async_httpx_clients:
            _async_httpx_clients.append(httpx.AsyncClient(timeout=60))
        client = _async_httpx_clients[0]
        assert isinstance(client, httpx.AsyncClient)
        async with httpx_sse.aconnect_sse(client, "POST", url, json=BODY) as source:
            return [json.loads(event.data)["delta"] async for event in source.aiter_sse()]

    return iter(_on_loop(collect()))


CLIENTS: dict[str, Callable[[str], Iterator[str]]] = {
    "seed": seed_client,
    "chatwire": provider_client,
    "ChatCompletion": chatwire_client,
    "httpx-sse": httpx_sse_client,
    "chatwire-async": chatwire_async_client,
    "httpx-sse-async": httpx_sse_async_client,
}


def best_times(url: str, repeats: int, clock: Callable[[], float]) -> dict[str, float]:
    """Each client's best time by ``clock`` for a full read of the answer.

    The clients take turns, so a change in machine load hits them all alike.
    """
    best = dict.fromkeys(CLIENTS, float("inf"))
    pieces = dict.fromkeys(CLIENTS, 0)
    for _ in range(repeats):
        for name, client in CLIENTS.items():
            start = clock()
            pieces[name] = sum(1 for _ in client(url))
            best[name] = min(best[name], clock() - start)
    assert len(set(pieces.values())) == 1, f"the clients disagree on the piece count: {pieces}"
    return best


def checked_server(count: int, pace: float) -> tuple[subprocess.Popen[bytes], str]:
    """A running server whose answer every client reads correctly (untimed: a warm-up too)."""
    expected = "".join(deltas(count))
    process, url = start_server(count, pace)
    try:
        for name, client in CLIENTS.items():
            pieces = list(client(url))
            assert len(pieces) == count, f"{name}: {len(pieces)} pieces, expected {count}"
            assert "".join(pieces) == expected, f"{name}: the text differs from the server's"
    except BaseException:
        stop_server(process)
        raise
    return process, url


def bench_bulk(count: int, repeats: int) -> None:
    process, url = checked_server(count, pace=0.0)
    try:
        best = best_times(url, repeats, time.perf_counter)
    finally:
        stop_server(process)
    rates = {name: count / seconds for name, seconds in best.items()}
    for name, rate in rates.items():
        print(f"wire bulk {name}: {rate / 1e3:.0f}k tokens/s ({count} pieces, best of {repeats})")
    print(
        f"wire bulk chatwire/seed = {rates['chatwire'] / rates['seed']:.2f}x (bar >= 2x), "
        f"ChatCompletion/seed = {rates['ChatCompletion'] / rates['seed']:.2f}x, "
        f"chatwire/httpx-sse = {rates['chatwire'] / rates['httpx-sse']:.2f}x, "
        f"chatwire-async/httpx-sse-async = "
        f"{rates['chatwire-async'] / rates['httpx-sse-async']:.2f}x",
        flush=True,
    )


def bench_paced(count: int, repeats: int, pace: float) -> None:
    process, url = checked_server(count, pace)
    try:
        best = best_times(url, repeats, time.process_time)
    finally:
        stop_server(process)
    cpu = {name: seconds / count * 1e6 for name, seconds in best.items()}
    for name, micros in cpu.items():
        print(
            f"wire paced {name}: {micros:.1f} us CPU/event "
            f"({count} events {pace * 1e3:g} ms apart, best of {repeats})"
        )
    print(
        f"wire paced CPU seed/chatwire = {cpu['seed'] / cpu['chatwire']:.2f}x, "
        f"httpx-sse/chatwire = {cpu['httpx-sse'] / cpu['chatwire']:.2f}x, "
        f"ChatCompletion/chatwire = {cpu['ChatCompletion'] / cpu['chatwire']:.2f}x, "
        f"httpx-sse-async/chatwire-async = "
        f"{cpu['httpx-sse-async'] / cpu['chatwire-async']:.2f}x",
        flush=True,
    )


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description="Loopback streaming speed: chatwire vs peers.")
    parser.add_argument("--events", type=int, default=200_000, help="pieces, bulk answer")
    parser.add_argument("--paced-events", type=int, default=2000, help="pieces, paced answer")
    parser.add_argument("--repeats", type=int, default=7, help="timed reads per client")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pace", type=float, default=0.001, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        run_server(args.events, args.pace)
        return
    # If anything hangs, dump the stacks and exit; the server then sees EOF and exits too.
    faulthandler.dump_traceback_later(BENCH_LIMIT, exit=True)
    bench_bulk(args.events, args.repeats)
    bench_paced(args.paced_events, args.repeats, args.pace)
    faulthandler.cancel_dump_traceback_later()
    for loop in _loop:  # as asyncio.run ends a loop: what lives on it closes
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


if __name__ == "__main__":
    main()
