"""Gateway overhead: streams through ``chatwire serve`` against the upstream directly.

A fake OpenAI-compatible upstream (``_fake_upstream.py``, its own process)
streams N tokens per request at a fixed pace. ``chatwire serve --provider
openai`` runs in front of it as one server process. The same light asyncio
client opens 1, 100 and 1000 concurrent streams, first to the upstream
directly and then through the gateway, and measures time to first token
(median over streams) and tokens/second (all tokens / wall time). A level's
streams start spread evenly over ``--ramp`` seconds (default 1 s: arrivals
as a real service sees them; 0 sends them all in the same instant), the same
for both paths. Every stream must deliver all N tokens; anything else counts
as an error.

The bars: at 100 streams, gateway tokens/s >= 0.9x direct and added median
time to first token < 5 ms; at 1000 streams (10 tokens/s each) no errors.

Run: python bench/gateway.py [--tokens 40] [--streams 1 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TOKEN = b"@@"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}: {said[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class Result:
    ttft: list[float]
    tokens: int
    errors: int
    wall: float
    cpu: float = 0.0  # seconds of CPU the serving process spent on this level


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_stream(
    port: int, path: str, body: bytes, expected: int, delay: float
) -> tuple[float, int]:
    """Time to first token and tokens received, over one raw HTTP/1.1 connection."""
    await asyncio.sleep(delay)
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer bench\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
        % (path.encode(), len(body), body)
    )
    first = -1.0
    seen = 0
    tail = b""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            return -1.0, 0
        while chunk := await reader.read(65536):
            # Count tokens across read boundaries without double counting.
            window = tail + chunk
            seen += window.count(TOKEN) - tail.count(TOKEN)
            tail = window[-1:]
            if first < 0 and seen:
                first = time.perf_counter() - start
    finally:
        writer.close()
    return first, seen if seen == expected else -seen


async def run_level(port: int, path: str, streams: int, tokens: int, ramp: float) -> Result:
    """``streams`` concurrent streams, their starts spread evenly over ``ramp`` seconds."""
    body = json.dumps(
        {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "go"}]}
    ).encode()
    start = time.perf_counter()
    outcomes = await asyncio.gather(
        *(one_stream(port, path, body, tokens, i * ramp / streams) for i in range(streams)),
        return_exceptions=True,
    )
    wall = time.perf_counter() - start
    ttft, total, errors = [], 0, 0
    for outcome in outcomes:
        if isinstance(outcome, BaseException) or outcome[1] <= 0 or outcome[0] < 0:
            errors += 1
            continue
        ttft.append(outcome[0])
        total += outcome[1]
    return Result(ttft, total, errors, wall)


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def measure(
    streams: int, tokens: int, interval: float, ramp: float, home: str
) -> dict[str, Result]:
    upstream_port, gateway_port = free_port(), free_port()
    upstream = start([
        sys.executable, str(BENCH / "_fake_upstream.py"), str(upstream_port),
        "--tokens", str(tokens), "--interval", str(interval), "--lifetime", "900",
    ])  # fmt: skip
    chatwire = shutil.which("chatwire", path=str(Path(sys.executable).parent)) or "chatwire"
    gateway = start([
        chatwire, "serve", "--port", str(gateway_port), "--provider", "openai",
        "-o", f"base_url=http://127.0.0.1:{upstream_port}/v1", "-o", "api_key=bench",
    ], env={**os.environ, "CHATWIRE_HOME": home})  # fmt: skip
    try:
        wait_for_port(upstream_port, upstream)
        wait_for_port(gateway_port, gateway)
        path = "/v1/chat/completions"
        # Warm both paths at the same load (imports, pooled upstream connections),
        # so the timed run measures a gateway in its steady state.
        asyncio.run(run_level(upstream_port, path, streams, tokens, ramp))
        asyncio.run(run_level(gateway_port, path, streams, tokens, ramp))
        direct = asyncio.run(run_level(upstream_port, path, streams, tokens, ramp))
        before = cpu_seconds(gateway.pid)
        through = asyncio.run(run_level(gateway_port, path, streams, tokens, ramp))
        through.cpu = cpu_seconds(gateway.pid) - before
        return {"direct": direct, "gateway": through}
    finally:
        for process in (gateway, upstream):
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument(
        "--ramp", type=float, default=1.0,
        help="seconds over which a level's streams start (0: all at once)",
    )  # fmt: skip
    parser.add_argument(
        "--streams", type=int, nargs="*", default=[1, 100, 1000],
        help="the levels to run, by their number of concurrent streams",
    )  # fmt: skip
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # The gateway logs as it would for a user, into a log of its own that goes
    # away with the bench, never into the user's.
    home = tempfile.TemporaryDirectory(prefix="chatwire-bench-")
    levels = [(streams, 0.1 if streams >= 1000 else 0.05) for streams in args.streams]
    for streams, interval in levels:
        ramp = args.ramp if streams > 1 else 0.0
        results = measure(streams, args.tokens, interval, ramp, home.name)
        rates = {}
        for name, result in results.items():
            rate = result.tokens / result.wall
            rates[name] = rate
            ttft = statistics.median(result.ttft) * 1000 if result.ttft else float("nan")
            print(
                f"gateway {streams:4} streams x {args.tokens} tokens @ {1 / interval:g}/s, "
                f"ramp {args.ramp:g}s "
                f"{name:8}: {rate:8.0f} tokens/s, median first token {ttft:7.1f} ms, "
                f"errors {result.errors}"
            )
        added = float("nan")
        if results["gateway"].ttft and results["direct"].ttft:
            gateway_ttft = statistics.median(results["gateway"].ttft)
            added = (gateway_ttft - statistics.median(results["direct"].ttft)) * 1000
        print(
            f"gateway {streams:4} streams: tokens/s gateway/direct = "
            f"{rates['gateway'] / rates['direct']:.3f}x, added median first token "
            f"{added:.2f} ms, errors {results['gateway'].errors}, gateway CPU "
            f"{results['gateway'].cpu / max(results['gateway'].tokens, 1) * 1e6:.0f} us/token "
            f"(bars: >= 0.9x and < 5 ms at 100; no errors at 1000)"
        )
        sys.stdout.flush()
    home.cleanup()


if __name__ == "__main__":
    main()
