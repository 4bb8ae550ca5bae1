"""How fast chatwire's SSE decoder turns bytes into events, next to its peers.

Two recorded streams of about 20 MB each are built in memory from a fixed
seed: an OpenAI-style one (``chat.completion.chunk`` JSON per event, ending
in ``data: [DONE]``) and a Forefront-style one (``{"delta": ...}`` per
event). Each is cut into the same network-like chunks (1 to 16 KiB, seeded)
and decoded in this one process by:

- chatwire's ``SSEDecoder.feed`` (whole events), and ``feed_data`` (event data
  only, the bulk path its providers read with);
- the openai SDK's ``SSEDecoder().iter_bytes``;
- httpx-sse's ``EventSource(response).iter_sse()`` over an ``httpx.Response``
  that streams the chunks, the way httpx-sse users read a response.

All three must agree on every event's data. The best of several repeats is
reported as events per second, one line per stream style.

Run: ``python bench/sse_decode.py [--repeats N] [--mb SIZE]`` (the first run
sets up ``bench/.venv``; see ``_env.py``).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from _env import ensure_venv

SEED = 20240501
MIN_CHUNK = 1 << 10
MAX_CHUNK = 16 << 10

# Token texts of the kind a chat model streams: mostly short words with a
# leading space, some punctuation, line breaks and non-ASCII text (so UTF-8
# characters get split across chunk boundaries).
SAMPLE_TEXT = (
    "the of and to in is that for it as with on be by this are or from at an not which "
    "model stream token response request server client event data value error result "
    "function return python code example first second because however therefore "
    "should would could might also only just more most very each other such"
)
WORDS = tuple(SAMPLE_TEXT.split())
EXTRAS = (".", ",", ":", ";", "?", "!", "\n", "\n\n", "**", "`", "(", ")", "-", "'s")
NON_ASCII = ("é", "ü", "—", "\u2019", "\u201c", "\u201d", "日本", "語", "😀", "→", "ñ", "ç")


def random_token(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.12:
        return rng.choice(EXTRAS)
    if roll < 0.16:
        return rng.choice(NON_ASCII)
    word = rng.choice(WORDS)
    if rng.random() < 0.3:
        # A long word streamed as several tokens: emit just a piece of it.
        word = word[: rng.randint(1, len(word))]
    if rng.random() < 0.1:
        word = word.capitalize()
    return (" " + word) if rng.random() < 0.75 else word


def openai_stream(size: int, rng: random.Random) -> bytes:
    """An OpenAI chat-completions stream of about ``size`` bytes."""
    stamp = 1714550400
    chunk_id = "chatcmpl-" + "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123", k=29))
    head: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": stamp,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
    }

    def event(delta: dict[str, str], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = json.dumps({**head, "choices": [choice]}, ensure_ascii=False, separators=(",", ":"))
        return b"data: " + body.encode() + b"\n\n"

    parts = [event({"role": "assistant", "content": ""}, None)]
    total = len(parts[0])
    while total < size:
        part = event({"content": random_token(rng)}, None)
        parts.append(part)
        total += len(part)
    parts.append(event({}, "stop"))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def forefront_stream(size: int, rng: random.Random) -> bytes:
    """A Forefront free-chat stream of about ``size`` bytes."""
    parts: list[bytes] = []
    total = 0
    while total < size:
        part = b"data: " + json.dumps({"delta": random_token(rng)}, ensure_ascii=False).encode()
        part += b"\n\n"
        parts.append(part)
        total += len(part)
    return b"".join(parts)


def split(stream: bytes, rng: random.Random) -> list[bytes]:
    """Cut a stream into chunks the size a socket read might return."""
    chunks: list[bytes] = []
    start = 0
    while start < len(stream):
        end = start + rng.randint(MIN_CHUNK, MAX_CHUNK)
        chunks.append(stream[start:end])
        start = end
    return chunks


# Each decoder is a function from the chunk list to an iterator of event data.


def chatwire_events(chunks: list[bytes]) -> Iterator[str]:
    from chatwire._sse import SSEDecoder

    decoder = SSEDecoder()
    for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event.data


def chatwire_data(chunks: list[bytes]) -> Iterator[str]:
    from chatwire._sse import SSEDecoder

    # ``feed_data``: the path chatwire's providers use (event data only).
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed_data(chunk)


def openai_events(chunks: list[bytes]) -> Iterator[str]:
    from openai._streaming import SSEDecoder

    for event in SSEDecoder().iter_bytes(iter(chunks)):
        yield event.data


def httpx_sse_events(chunks: list[bytes]) -> Iterator[str]:
    import httpx
    import httpx_sse

    class Chunks(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            return iter(chunks)

    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunks())
    for event in httpx_sse.EventSource(response).iter_sse():
        yield event.data


DECODERS: dict[str, Callable[[list[bytes]], Iterator[str]]] = {
    "chatwire": chatwire_events,
    "chatwire-data": chatwire_data,
    "openai-sdk": openai_events,
    "httpx-sse": httpx_sse_events,
}


def count_events(chunks: list[bytes], decode: Callable[[list[bytes]], Iterator[str]]) -> int:
    # A bare loop, so counting adds the same tiny cost to every decoder.
    count = 0
    for _ in decode(chunks):
        count += 1
    return count


def best_rates(chunks: list[bytes], repeats: int) -> dict[str, float]:
    """Each decoder's best events/second over ``repeats`` timed runs.

    The decoders take turns, so a change in machine load hits them all alike.
    """
    best = dict.fromkeys(DECODERS, float("inf"))
    events = dict.fromkeys(DECODERS, 0)
    for _ in range(repeats):
        for name, decode in DECODERS.items():
            gc.collect()
            start = time.perf_counter()
            events[name] = count_events(chunks, decode)
            best[name] = min(best[name], time.perf_counter() - start)
    assert len(set(events.values())) == 1, f"the decoders disagree on the event count: {events}"
    return {name: events[name] / best[name] for name in DECODERS}


def bench_style(style: str, stream: bytes, chunks: list[bytes], repeats: int) -> None:
    # Correctness first, untimed: every decoder yields the same event data.
    reference = list(chatwire_events(chunks))
    for name, decode in DECODERS.items():
        got = list(decode(chunks))
        assert got == reference, f"{name} disagrees with chatwire on the {style} stream"

    rates = best_rates(chunks, repeats)
    shown = ", ".join(f"{name} {rate / 1e6:.2f}M ev/s" for name, rate in rates.items())
    vs_openai = rates["chatwire"] / rates["openai-sdk"]
    vs_httpx = rates["chatwire"] / rates["httpx-sse"]
    print(
        f"sse_decode {style} ({len(stream) / (1 << 20):.1f} MiB, {len(reference)} events, "
        f"{len(chunks)} chunks): {shown}; chatwire/openai-sdk = {vs_openai:.2f}x (bar >= 2x), "
        f"chatwire/httpx-sse = {vs_httpx:.2f}x, "
        f"chatwire-data/openai-sdk = {rates['chatwire-data'] / rates['openai-sdk']:.2f}x",
        flush=True,
    )


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description="SSE decoding speed: chatwire vs peers.")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per decoder")
    parser.add_argument("--mb", type=float, default=20.0, help="size of each stream in MiB")
    args = parser.parse_args()

    size = int(args.mb * (1 << 20))
    styles = {"openai-style": openai_stream, "forefront-style": forefront_stream}
    for offset, (style, build) in enumerate(styles.items()):
        stream = build(size, random.Random(SEED + offset))
        chunks = split(stream, random.Random(SEED))
        bench_style(style, stream, chunks, args.repeats)


if __name__ == "__main__":
    main()
