"""Load: 1000 concurrent streams through one gateway process, 10 rounds, and a peer.

A fake OpenAI-compatible upstream (``_fake_upstream.py``) streams 20 tokens
per request at 10 tokens/s. One server process sits in front of it:
``chatwire serve --provider openai`` first, then gpt4free's API server
(``g4f api``, from the bench venv) with the same upstream as its provider.
Each round opens ``--streams`` streams at once (their starts spread over
``--ramp`` seconds) and waits for all of them. Reported per server:

- errors: streams that did not deliver every token (or got no 200);
- leaked connections: TCP connections to the server or to the upstream
  still open (neither listening nor in TIME_WAIT) once every stream has
  ended and the keep-alive time has passed;
- peak memory: the server's peak resident set size (VmHWM), and its growth
  over the idle process, per 1000 streams.

The two servers take turns, ``--repeats`` times, the first going second the
next time, so neither gains from a quieter machine or a warmer page cache.

Everything binds 127.0.0.1; each stream has a time limit and each server a
fixed number of rounds, so the run ends by itself.

How g4f is run, and why: its ``/v1/chat/completions`` accepts an upstream
URL as the provider (g4f 8.x turns an ``http://`` provider string into an
OpenAI-style provider with that base URL). It is started through
``g4f.api.run_api`` with the GUI, cookie files and access log off. Two
things it would fetch from the network are kept local: its provider list
(``providers.json``, pre-written into a private ``G4F_CACHE_DIR``) and, via
the command line only, a provider download (skipped by not using it). The
request names model ``""``: any other name makes g4f fetch the upstream's
model list with a blocking call on its event loop for every request.

Run: python bench/load.py [--streams 1000] [--rounds 10] [--repeats 2] [--skip-g4f]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import ensure_venv, stop

ensure_venv()

from gateway import free_port, one_stream, start_upstream, wait_for_port  # noqa: E402

TOKENS = 20
INTERVAL = 0.1  # 10 tokens/s per stream
STREAM_LIMIT = 120.0  # seconds one stream may take before it counts as an error
KEEPALIVE_WAIT = 6.0  # past both servers' idle keep-alive time (chatwire: 4 s, uvicorn: 5 s)
# /proc/net/tcp states that are not a live connection.
_LISTEN, _TIME_WAIT = "0A", "06"


@dataclass
class Report:
    name: str
    rounds: list[float] = field(default_factory=list)  # wall seconds per round
    errors: int = 0
    leaked: int = 0
    idle_rss: int = 0  # kB, before the first round
    peak_rss: int = 0  # kB, VmHWM after the last round
    notes: list[str] = field(default_factory=list)


def memory_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for process {pid}")


def open_connections(ports: set[int]) -> int:
    """Live TCP connections on loopback that touch one of ``ports``.

    Both ends of a loopback connection are listed; a connection counts once.
    """
    seen: set[frozenset[str]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state in (_LISTEN, _TIME_WAIT):
                continue
            if {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)} & ports:
                seen.add(frozenset((local, remote)))
    return len(seen)


async def one_round(port: int, body: bytes, streams: int, ramp: float) -> int:
    """Open ``streams`` streams; return how many failed."""

    async def limited(delay: float) -> tuple[float, int]:
        return await asyncio.wait_for(
            one_stream(port, None, body, TOKENS, delay), STREAM_LIMIT + delay
        )

    outcomes = await asyncio.gather(
        *(limited(i * ramp / streams) for i in range(streams)), return_exceptions=True
    )
    return sum(
        1 for outcome in outcomes if isinstance(outcome, BaseException) or outcome[1] != TOKENS
    )


def drive(report: Report, server: subprocess.Popen[bytes], port: int, upstream_port: int,
          body: bytes, args: argparse.Namespace) -> None:  # fmt: skip
    wait_for_port(port, server)
    # One small warm-up round: imports and first connections are not the load.
    asyncio.run(one_round(port, body, 10, 0.0))
    time.sleep(KEEPALIVE_WAIT)
    report.idle_rss = memory_kb(server.pid, "VmRSS")
    for _ in range(args.rounds):
        start = time.perf_counter()
        report.errors += asyncio.run(one_round(port, body, args.streams, args.ramp))
        report.rounds.append(time.perf_counter() - start)
        if server.poll() is not None:
            report.notes.append(f"server exited with {server.returncode}")
            return
    report.peak_rss = memory_kb(server.pid, "VmHWM")
    time.sleep(KEEPALIVE_WAIT)
    report.leaked = open_connections({port, upstream_port})


def run_server(
    name: str,
    launch: Callable[[int, int], subprocess.Popen[bytes]],
    model: str,
    args: argparse.Namespace,
) -> Report:
    """Start the upstream and the server ``launch(port, upstream_port)``, then load it."""
    report = Report(name)
    upstream_port, port = free_port(), free_port()
    upstream = start_upstream(upstream_port, TOKENS, INTERVAL)
    server = launch(port, upstream_port)
    body = json.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}
    ).encode()
    try:
        wait_for_port(upstream_port, upstream)
        drive(report, server, port, upstream_port, body, args)
    finally:
        stop(server, upstream)
    return report


def run_chatwire(args: argparse.Namespace, home: Path) -> Report:
    chatwire = shutil.which("chatwire", path=str(Path(sys.executable).parent)) or "chatwire"

    def launch(port: int, upstream_port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [chatwire, "serve", "--port", str(port), "--provider", "openai",
             "--max-concurrent", str(args.streams + 100),
             "-o", f"base_url=http://127.0.0.1:{upstream_port}/v1", "-o", "api_key=bench"],
            stdout=subprocess.DEVNULL, env={**os.environ, "CHATWIRE_HOME": str(home / "chatwire")},
        )  # fmt: skip

    return run_server("chatwire serve", launch, "fake", args)


_G4F_SERVER = """
import sys
from g4f.api import AppConfig, run_api
AppConfig.set_config(ignore_cookie_files=True, gui=False, provider=sys.argv[2])
run_api(bind="127.0.0.1:" + sys.argv[1], access_log=False, log_level="warning", use_colors=False)
"""


def run_g4f(args: argparse.Namespace, home: Path) -> Report:
    cache = home / "g4f-cache"
    today = datetime.date.today()
    for day in (today, today + datetime.timedelta(days=1)):  # a run may cross midnight
        models = cache / ".models" / day.isoformat()
        models.mkdir(parents=True, exist_ok=True)
        (models / "providers.json").write_text(
            json.dumps({"providers": {"default": {"baseUrl": "http://127.0.0.1:9/v1"}},
                        "defaultModels": {}})
        )  # fmt: skip
    env = {**os.environ, "HOME": str(home / "g4f-home"), "G4F_CACHE_DIR": str(cache)}

    def launch(port: int, upstream_port: int) -> subprocess.Popen[bytes]:
        upstream = f"http://127.0.0.1:{upstream_port}/v1"
        return subprocess.Popen(
            [sys.executable, "-c", _G4F_SERVER, str(port), upstream],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip

    return run_server("g4f api", launch, "", args)


def print_report(report: Report, args: argparse.Namespace) -> None:
    grown = (report.peak_rss - report.idle_rss) / 1024 * 1000 / args.streams
    rounds = (
        f"{min(report.rounds):.1f}-{max(report.rounds):.1f} s per round"
        if report.rounds else "no round finished"
    )  # fmt: skip
    print(
        f"load {report.name:14}: {len(report.rounds)} rounds x {args.streams} streams "
        f"({TOKENS} tokens @ {1 / INTERVAL:g}/s): errors {report.errors}, "
        f"leaked connections {report.leaked}, peak RSS {report.peak_rss / 1024:.1f} MiB "
        f"(idle {report.idle_rss / 1024:.1f} MiB), growth {grown:.1f} MiB per 1000 streams; "
        f"{rounds}" + "".join(f"; {note}" for note in report.notes)
    )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ramp", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=2, help="turns each server takes")
    parser.add_argument("--skip-g4f", action="store_true")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="chatwire-load-") as scratch:
        home = Path(scratch)
        if args.skip_g4f:
            for _ in range(args.repeats):
                print_report(run_chatwire(args, home), args)
            return
        for repeat in range(args.repeats):
            runs = [run_chatwire, run_g4f] if repeat % 2 == 0 else [run_g4f, run_chatwire]
            reports = {}
            for run in runs:
                report = run(args, home)
                print_report(report, args)
                reports[report.name] = report
            compare(reports["chatwire serve"], reports["g4f api"], repeat)


def compare(ours: Report, peer: Report, repeat: int) -> None:
    if not (ours.peak_rss and peer.peak_rss):
        return
    first = "chatwire" if repeat % 2 == 0 else "g4f"
    print(
        f"load repeat {repeat + 1} ({first} first): peak RSS chatwire/g4f = "
        f"{ours.peak_rss / peer.peak_rss:.2f}x, growth per 1000 streams chatwire/g4f = "
        f"{(ours.peak_rss - ours.idle_rss) / max(peer.peak_rss - peer.idle_rss, 1):.2f}x "
        f"(lower is better); errors chatwire {ours.errors} vs g4f {peer.errors}",
        flush=True,
    )


if __name__ == "__main__":
    main()
