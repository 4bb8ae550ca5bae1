"""A fake OpenAI-compatible upstream for benchmarks: streams N tokens at a fixed pace.

Raw asyncio, one process, loopback only. Every POST is answered with a
``chat.completion.chunk`` stream: a role chunk, ``--tokens`` content chunks
each ``--interval`` seconds apart (each token's text is ``@@ `` so a client
can count tokens by scanning bytes; with ``--words``, ``@@ `` and a word, so
that a log's full-text index has as many words to index as the answer has
tokens), a finish chunk and ``[DONE]``. Like real
servers it keeps the connection open for the next request unless the client
asks it to close. It exits after ``--lifetime`` seconds whatever happens.

Run: python bench/_fake_upstream.py PORT [--tokens 40] [--interval 0.05] [--words]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource

TOKEN = "@@ "
# With --words: a vocabulary of made-up words, one a token in turn; a full-text index
# reads "@" as a separator, so "@@" itself is no word to it.
VOCABULARY = [f"w{number:x}" for number in range(997)]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(delta: dict[str, str], finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }  # fmt: skip
    return _chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"


async def _answer(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tokens: int,
    interval: float,
    contents: list[bytes],
) -> None:
    try:
        keep_alive = True
        while keep_alive:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    keep_alive = value.strip().lower() != b"close"
            await reader.readexactly(length)
            connection = b"keep-alive" if keep_alive else b"close"
            writer.write(HEAD + b"connection: " + connection + b"\r\n\r\n")
            writer.write(_event({"role": "assistant", "content": ""}))
            for index in range(tokens):
                await asyncio.sleep(interval)
                writer.write(contents[index % len(contents)])
                await writer.drain()
            writer.write(_event({}, "stop") + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(port: int, tokens: int, interval: float, lifetime: float, words: bool) -> None:
    texts = [TOKEN + word + " " for word in VOCABULARY] if words else [TOKEN]
    contents = [_event({"content": text}) for text in texts]
    server = await asyncio.start_server(
        lambda r, w: _answer(r, w, tokens, interval, contents), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await asyncio.sleep(lifetime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--words", action="store_true", help="a word after each token's @@")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.tokens, args.interval, args.lifetime, args.words))


if __name__ == "__main__":
    main()
