"""Gateway overhead: ``chatwire serve`` and LiteLLM's proxy, against the upstream directly.

A fake OpenAI-compatible upstream (``_fake_upstream.py``, its own process)
streams N tokens per request at a fixed pace. In front of it, each as one
server process behind an API key with no log: ``chatwire serve --provider
openai`` and the peer, LiteLLM's proxy (``litellm --config``, one worker,
its model cost map read locally), each running alone. The same light asyncio
client opens 1, 100 and 1000 concurrent streams, to the upstream directly and
then through each gateway, and measures time to first token (median over streams), tokens per
second (all tokens / wall time) and each gateway's CPU time (its process and
any children) per request. A level's streams start spread evenly over
``--ramp`` seconds (default 1 s: arrivals as a real service sees them; 0
sends them all in the same instant), the same for every path. Every stream
must deliver all N tokens; anything else counts as an error.

The bars: at 100 streams, chatwire's tokens/s >= 0.9x direct and added
median time to first token < 5 ms; at 1000 streams (10 tokens/s each) no
errors; chatwire's CPU per request at most 1/33 of LiteLLM's in the same run.

A third target, the floor (``_floor_forwarder.py``), copies the upstream's
bytes to the client and does nothing else: its CPU per request is what the
kernel and the event loop charge any Python gateway for the same streams,
the yardstick for what a gateway's own work costs above it.

With ``--saturate``, the log's cost instead, with two servers at a time
sharing one core: one with no log and one with a log (SQLite, or
PostgreSQL in a throwaway cluster as the tests make it), or with
``--control`` a second with none. Each runs in a cgroup of its own, so the
core's time is split evenly however many threads either runs, and each has
a closed loop of clients of its own (each client starting its next stream
as soon as the last ended, the upstream sending its tokens without pause),
enough to keep the core busy throughout: what one serves beside the other
is what its own work allows. The load, the upstream and PostgreSQL's server
run on the other cores, as a database on a machine of its own would; the
log's work in the gateway, its writer thread and the database's client
included, is counted in full. ``--workers 2`` puts both of each server's
processes on that core: what two processes writing one log add.

Side by side, not one after the other, because these machines change speed
faster than turns can follow: each core slows on its own, to half its speed
at worst, for seconds at a time with nothing else running, and two servers
with no log, loaded in turn a second each, differed by 13-15% a turn (the
logarithm's standard deviation), 0.14 over a round of three; sharing a core,
by about 2% a turn and 0.009 a round.

It runs in rounds. Each starts a new upstream and, for each configuration
in an order that changes, a new pair of servers (a process keeps its speed
for life: the same pair for a whole run would tip every round the same
way), warms them, loads them together ``--turns`` times and stops them;
which cgroup each takes, and whose clients connect first, changes from
round to round and turn to turn. A configuration's log is kept from round
to round, growing as a long-lived server's does. A turn counts the streams
that end within ``--seconds``, after half a second of load and before a
third of a second more: the log's writer is then at work throughout,
neither idle at the start of the count nor writing its last batch after it.
A pause before each turn lets the last one's log be written. The load runs
on uvloop: a lighter load leaves more of its cores to the upstream and the
database. Reported: each round's streams per second of each log (the mean
of its turns) and its ratio to no log beside it, a round's ratio the
geometric mean of its turns'; the log's cost is the Hodges-Lehmann center of
the rounds' ratios, with the Wilcoxon signed-rank interval around it, and
the least of its time the servers' core was busy in a turn (under 100%, the
load did not keep it saturated). The bar: under 5%. It needs root, for the
cgroups and PostgreSQL's cluster, and two cores.

Run: python bench/gateway.py [--tokens 20] [--streams 1 100 1000] [--no-litellm]
     python bench/gateway.py --saturate [--clients 32] [--seconds 1] [--rounds 12] [--turns 3]
                                     [--control] [--tokens 20] [--words]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from _env import ensure_venv, stop
from _postgres import postgres_databases

BENCH = Path(__file__).resolve().parent
TOKEN = b"@@"
BODY = json.dumps(
    {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "go"}]}
).encode()


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


LEVEL_LIMIT_SECONDS = 600.0
# The log's writer gathers a batch for 0.2 s under load, then writes it: a pause this
# long before a --saturate turn keeps one server's last batch out of the next's turn.
SETTLE_SECONDS = 0.5
# A new --saturate server's load before its first turn: its imports done, its pool of
# upstream connections full.
WARM_UP_SECONDS = 1.5
# Load before and after a --saturate turn's count: more than the writer's linger on
# either side, so that it gathers and writes batches throughout the count.
WARM_SECONDS = 0.5
TAIL_SECONDS = 0.3
BAR = 0.05  # the most of its throughput a saturated gateway may lose to the log
# --saturate --control's second configuration with no log: its ratio to the first is
# what the run can tell from nothing.
CONTROL = "off again"
LITELLM_KEY = "sk-bench"  # LiteLLM wants its master key to start with sk-
LITELLM_CONFIG = """
model_list:
  - model_name: fake
    litellm_params:
      model: openai/fake
      api_base: http://127.0.0.1:{upstream}/v1
      api_key: bench
general_settings:
  master_key: {key}
"""


@dataclass
class Target:
    name: str
    port: int
    key: str
    process: subprocess.Popen[bytes]


@dataclass
class Result:
    ttft: list[float]
    tokens: int
    errors: int
    wall: float
    cpu: float = 0.0  # seconds of CPU the serving process spent on this level


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its living descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, family = 0.0, {pid}
    for candidate in sorted(parents):  # a child's pid may be lower: walk up instead
        ancestor = candidate
        while ancestor in parents and ancestor not in family and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor in family:
            family.add(candidate)
    for member in family:
        total += times.get(member, 0.0)
    return total


async def one_stream(
    port: int, key: str | None, body: bytes, expected: int, delay: float
) -> tuple[float, int]:
    """Time to first token and tokens received, over one raw HTTP/1.1 connection
    (with ``key`` as its bearer token, if any)."""
    await asyncio.sleep(delay)
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    authorization = b"" if key is None else b"Authorization: Bearer %s\r\n" % key.encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n%sConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (authorization, len(body), body)
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


async def run_level(target: Target, streams: int, tokens: int, ramp: float) -> Result:
    """``streams`` concurrent streams, their starts spread evenly over ``ramp`` seconds."""
    start = time.perf_counter()
    pending = [
        one_stream(target.port, target.key, BODY, tokens, i * ramp / streams)
        for i in range(streams)
    ]
    outcomes = await asyncio.wait_for(
        asyncio.gather(*pending, return_exceptions=True), LEVEL_LIMIT_SECONDS
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


def start(
    argv: list[str],
    env: dict[str, str] | None = None,
    cores: set[int] | None = None,
    group: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``argv`` as a process, on ``cores`` only and in the cgroup ``group``, if given:
    set before it runs, so that every thread and child it makes has them too."""

    def place() -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))

    placed = cores is not None or group is not None
    # Safe here: the benches start processes from a process with no other thread.
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        preexec_fn=place if placed else None,  # noqa: PLW1509
    )  # fmt: skip


def start_upstream(
    port: int, tokens: int, interval: float, words: bool = False
) -> subprocess.Popen[bytes]:
    """The fake upstream on ``port``: ``tokens`` tokens an answer, ``interval`` s apart,
    each with a word of its own if ``words``."""
    return start([
        sys.executable, str(BENCH / "_fake_upstream.py"), str(port),
        "--tokens", str(tokens), "--interval", str(interval), "--lifetime", "1800",
        *(["--words"] if words else []),
    ])  # fmt: skip


def start_litellm(upstream: int, home: str) -> Target:
    port = free_port()
    config = Path(home) / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(upstream=upstream, key=LITELLM_KEY))
    litellm = shutil.which("litellm", path=str(Path(sys.executable).parent)) or "litellm"
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = subprocess.Popen(
        [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--num_workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment, cwd=home,
    )  # fmt: skip
    return Target("litellm", port, LITELLM_KEY, process)


def start_chatwire(
    upstream: int,
    home: str,
    workers: int = 1,
    database: str | None = None,
    cores: set[int] | None = None,
    group: Path | None = None,
) -> Target:
    """``chatwire serve`` with no log, or logging to ``database`` (a URL; "" the default
    file); on ``cores`` and in ``group`` if given (``start``)."""
    port = free_port()
    chatwire = shutil.which("chatwire", path=str(Path(sys.executable).parent)) or "chatwire"
    log = ["--no-log"] if database is None else ["--database-url", database] if database else []
    process = start([
        chatwire, "serve", "--port", str(port), "--provider", "openai", *log,
        "--workers", str(workers), "--api-key", "bench",
        "-o", f"base_url=http://127.0.0.1:{upstream}/v1", "-o", "api_key=bench",
    ], env={**os.environ, "CHATWIRE_HOME": home}, cores=cores, group=group)  # fmt: skip
    return Target("chatwire", port, "bench", process)


def start_floor(upstream: int, home: str) -> Target:
    port = free_port()
    process = start([sys.executable, str(BENCH / "_floor_forwarder.py"), str(port), str(upstream)])
    return Target("floor", port, "unused", process)


def measure(
    streams: int, tokens: int, interval: float, ramp: float, home: str, litellm: bool
) -> dict[str, Result]:
    """The upstream directly, then each gateway alone: started, warmed, measured, stopped.

    One gateway at a time, so that neither pays for the other's idle work on
    the machine's cores.
    """
    upstream_port = free_port()
    upstream = start_upstream(upstream_port, tokens, interval)
    direct = Target("direct", upstream_port, "bench", upstream)
    starters = [start_floor, start_chatwire] + ([start_litellm] if litellm else [])
    try:
        wait_for_port(upstream_port, upstream)
        asyncio.run(run_level(direct, streams, tokens, ramp))  # warm the upstream
        results = {"direct": asyncio.run(run_level(direct, streams, tokens, ramp))}
        for starter in starters:
            target = starter(upstream_port, home)
            try:
                wait_for_port(target.port, target.process, within=180)
                # Warm it at the same load (imports, pooled upstream connections), so
                # the timed run measures the gateway in its steady state.
                asyncio.run(run_level(target, streams, tokens, ramp))
                before = cpu_seconds(target.process.pid)
                results[target.name] = asyncio.run(run_level(target, streams, tokens, ramp))
                results[target.name].cpu = cpu_seconds(target.process.pid) - before
            finally:
                stop(target.process)
        return results
    finally:
        stop(upstream)


def report(streams: int, tokens: int, results: dict[str, Result]) -> None:
    direct = results["direct"]
    direct_rate = direct.tokens / direct.wall
    direct_ttft = statistics.median(direct.ttft) if direct.ttft else float("nan")
    print(
        f"gateway {streams:4} streams x {tokens} tokens direct  : {direct_rate:8.0f} tokens/s, "
        f"median first token {direct_ttft * 1000:7.1f} ms, errors {direct.errors}"
    )
    cpu: dict[str, float] = {}
    for name, result in results.items():
        if name == "direct":
            continue
        rate = result.tokens / result.wall
        added = (
            (statistics.median(result.ttft) - direct_ttft) * 1000 if result.ttft else float("nan")
        )
        requests = streams - result.errors
        cpu[name] = result.cpu / max(requests, 1) * 1000
        print(
            f"gateway {streams:4} streams {name:8}: tokens/s {rate / direct_rate:.3f}x direct, "
            f"added median first token {added:.1f} ms, CPU {cpu[name]:.2f} ms/request "
            f"({result.cpu / max(result.tokens, 1) * 1e6:.0f} us/token), errors {result.errors}"
        )
    if "litellm" in cpu:
        print(
            f"gateway {streams:4} streams: CPU per request chatwire/litellm = "
            f"{cpu['chatwire'] / cpu['litellm']:.3f} (bar <= 1/33 = 0.030, "
            f"{cpu['litellm'] / 33:.2f} ms; the floor alone is {cpu['floor']:.2f} ms)"
        )
    if cpu["floor"] > 0:  # a single stream can cost less than the kernel's clock tick
        over = ", ".join(
            f"{name}/floor = {cpu[name] / cpu['floor']:.1f}x" for name in cpu if name != "floor"
        )
        print(f"gateway {streams:4} streams: CPU per request {over}")
    sys.stdout.flush()


async def closed_loop(
    targets: list[Target],
    clients: int,
    tokens: int,
    seconds: float,
    warm: float = 0.0,
    tail: float = 0.0,
) -> list[int]:
    """Streams completed (every token received) through each of ``targets`` within
    ``seconds``, by ``clients`` of its own, all looping at once from ``warm`` seconds
    before that span until ``tail`` seconds after it."""
    opens = time.perf_counter() + warm
    closes = opens + seconds
    deadline = closes + tail
    done = [0] * len(targets)

    async def client(index: int) -> None:
        target = targets[index]
        while time.perf_counter() < deadline:
            _, received = await one_stream(target.port, target.key, BODY, tokens, 0.0)
            if received != tokens:
                raise RuntimeError(f"a stream ended after {received} of {tokens} tokens")
            if opens <= time.perf_counter() < closes:
                done[index] += 1

    await asyncio.gather(*(client(index) for index in range(len(targets)) for _ in range(clients)))
    return done


@contextlib.contextmanager
def cpu_groups(count: int) -> Iterator[list[Path]]:
    """``count`` new cgroups with the CPU controller, removed after (their processes
    must be gone by then): groups share a core evenly however many threads each runs."""
    v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
    controls = v2 / "cgroup.subtree_control"
    if (v1 / "cpu.shares").exists():
        root = v1
    elif controls.exists() and "cpu" in controls.read_text().split():
        root = v2
    else:
        raise SystemExit("--saturate needs the CPU cgroup controller (cgroup v1 or v2)")
    groups = [root / f"chatwire-bench-{os.getpid()}-{index}" for index in range(count)]
    try:
        for group in groups:
            group.mkdir()
    except OSError as exc:
        raise SystemExit(f"--saturate makes cgroups, as root: {exc}") from None
    try:
        yield groups
    finally:
        for group in groups:
            with contextlib.suppress(OSError):
                group.rmdir()


def core_ticks(core: int) -> tuple[int, int]:
    """``core``'s idle and total time so far, in clock ticks, from /proc/stat."""
    with open("/proc/stat") as stat:
        for line in stat:
            name, *fields = line.split()
            if name == f"cpu{core}":
                ticks = [int(field) for field in fields[:8]]
                return ticks[3] + ticks[4], sum(ticks)  # idle and waiting for I/O
    raise RuntimeError(f"no cpu{core} in /proc/stat")


# (no log, with the log) streams per second, a pair a turn, a list of turns a round.
PairedRates = list[list[tuple[float, float]]]


def saturate(
    clients: int,
    tokens: int,
    words: bool,
    seconds: float,
    rounds: int,
    turns: int,
    control: bool,
    home: str,
) -> None:
    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        raise SystemExit("--saturate needs two cores: one for the servers, one for the rest")
    core = min(cores)
    # This process (the load), and what it starts from here on (the upstream, the
    # database's cluster), keeps off the servers' core.
    os.sched_setaffinity(0, cores - {core})
    try:
        with cpu_groups(2) as groups, postgres_databases() as new_postgres:
            for workers in (1, 2):
                # A log for each configuration, kept from round to round as a long-lived
                # server's would be: the default SQLite file in its home, or a database.
                logs: dict[str, str | None] = {"off": None}
                if control:
                    logs[CONTROL] = None
                logs |= {"sqlite": "", "postgresql": new_postgres()}
                starters = {
                    name: functools.partial(
                        start_chatwire,
                        home=tempfile.mkdtemp(dir=home),
                        workers=workers,
                        database=log,
                        cores={core},
                    )
                    for name, log in logs.items()
                }
                rates, busy = saturated_rates(
                    starters, groups, core, clients, tokens, seconds, rounds, turns, words
                )
                report_saturated(workers, rates, busy)
    finally:
        os.sched_setaffinity(0, cores)


def saturated_rates(
    starters: dict[str, Callable[..., Target]],
    groups: list[Path],
    core: int,
    clients: int,
    tokens: int,
    seconds: float,
    rounds: int,
    turns: int,
    words: bool = False,
) -> tuple[dict[str, PairedRates], float]:
    """Each configuration but ``off`` beside ``off``: their streams per second, turn by
    turn, a list a round; and the least of its time ``core`` was busy in a turn.

    ``starters`` start a server of each, given the upstream's port and a
    cgroup (one of ``groups``), on ``core``. Each round starts a new upstream
    (its tokens carrying words if ``words``) and, for each configuration in an
    order that changes, a new pair: that configuration and ``off``, which
    run their turns at once, sharing the core evenly, and are stopped before
    the next pair starts. Which cgroup each takes, which starts first and
    whose clients first connect changes from round to round and turn to turn.
    """
    import uvloop  # the load's own loop: the lighter it is, the more of the machine is the rest's

    others = [name for name in starters if name != "off"]
    rates: dict[str, PairedRates] = {name: [] for name in others}
    busy = 1.0
    for number in range(rounds):
        upstream_port = free_port()
        upstream = start_upstream(upstream_port, tokens, 0.0, words)
        try:
            wait_for_port(upstream_port, upstream)
            start = number % len(others)
            for name in others[start:] + others[:start]:
                started: dict[str, Target] = {}
                swap = number % 2
                roles = list(zip(("off", name), groups[swap:] + groups[:swap], strict=True))
                try:
                    for role, group in roles[::-1] if swap else roles:
                        started[role] = starters[role](upstream_port, group=group)
                    pair = [started["off"], started[name]]
                    for server in pair:
                        wait_for_port(server.port, server.process, within=180)
                    uvloop.run(closed_loop(pair, clients, tokens, WARM_UP_SECONDS))
                    this_round: list[tuple[float, float]] = []
                    for index in range(turns):
                        # The last turn's batch is written on its own time.
                        time.sleep(SETTLE_SECONDS)
                        order = pair[::-1] if (number + index) % 2 else pair
                        idle, total = core_ticks(core)
                        done = uvloop.run(
                            closed_loop(order, clients, tokens, seconds, WARM_SECONDS, TAIL_SECONDS)
                        )
                        idle_now, total_now = core_ticks(core)
                        busy = min(busy, 1 - (idle_now - idle) / max(1, total_now - total))
                        off, logged = done[::-1] if order is not pair else done
                        if not off or not logged:  # a ratio to nothing: a server stalled
                            raise RuntimeError(f"{name}: no stream ended in a {seconds} s turn")
                        this_round.append((off / seconds, logged / seconds))
                finally:
                    stop(*(server.process for server in started.values()))
                rates[name].append(this_round)
        finally:
            stop(upstream)
    return rates, busy


def center_interval(
    values: list[float], confidence: float = 0.95
) -> tuple[float, tuple[float, float] | None]:
    """The center of what ``values`` sample, and an interval that holds it with
    ``confidence``, for any distribution symmetric about its center: the
    Hodges-Lehmann estimate (the median of every pairwise mean, each value with
    itself included) and the interval the Wilcoxon signed-rank test gives, between
    the ``c``-th smallest and ``c``-th largest of those means, ``c`` the largest
    count for which the signed-rank statistic falls below it with a chance of at
    most half of ``1 - confidence`` (its exact distribution, counted). Robust as a
    median is to a few wild values, it wastes far fewer of the tame ones.
    ``None`` for the interval when there are too few values (fewer than six for
    95%)."""
    count = len(values)
    means = sorted((values[i] + values[j]) / 2 for i in range(count) for j in range(i, count))
    # ways[s]: the subsets of the ranks 1..count that add up to s.
    ways = [1] + [0] * len(means)
    for rank in range(1, count + 1):
        for total in range(len(ways) - 1, rank - 1, -1):
            ways[total] += ways[total - rank]
    allowed = (1 - confidence) / 2 * 2**count
    c, below = 0, 0
    while c < len(means) // 2 and below + ways[c] <= allowed:
        below += ways[c]
        c += 1
    center = statistics.median(means)
    if c == 0:
        return center, None
    return center, (means[c - 1], means[len(means) - c])


def report_saturated(workers: int, rates: dict[str, PairedRates], busy: float) -> None:
    """Each log against no log beside it: a round's ratio is the geometric mean of its
    turns', and the log's cost comes from the rounds' ratios' center and interval
    (``center_interval``, on their logarithms). The interval says whether the rounds
    agree enough to tell the bar met from missed."""
    costs, verdicts = [], []
    for name, per_round in rates.items():
        each = " ".join(f"{statistics.fmean(r for _, r in turns):4.0f}" for turns in per_round)
        logs = [statistics.fmean(math.log(r / off) for off, r in turns) for turns in per_round]
        center, interval = center_interval(logs)
        ratio = math.exp(center)
        decided = "undecided"
        if interval is None:
            said = "too few for a 95% interval"
        else:
            low, high = math.exp(interval[0]), math.exp(interval[1])
            said = f"95% in {low:.3f}x-{high:.3f}x"
            if 1 - low < BAR:
                decided = "met"
            elif 1 - high >= BAR:
                decided = "missed"
        if name != CONTROL:
            costs.append(1 - ratio)
            verdicts.append(decided)
        print(
            f"gateway saturated, --workers {workers}, log {name:10}: {each} streams/s "
            f"({ratio:.3f}x no log beside it over {len(logs)} rounds; {said})"
        )
    verdict = (
        "met" if set(verdicts) == {"met"} else "missed" if "missed" in verdicts else "undecided"
    )
    print(
        f"gateway saturated, --workers {workers}: the servers' core busy {busy:.1%} of every "
        f"turn at least; the log costs {max(costs) * 100:.1f}% of throughput at most "
        f"(bar < {BAR:.0%}; at 95% confidence: {verdict})"
    )
    sys.stdout.flush()


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument(
        "--ramp", type=float, default=1.0,
        help="seconds over which a level's streams start (0: all at once)",
    )  # fmt: skip
    parser.add_argument(
        "--streams", type=int, nargs="*", default=[1, 100, 1000],
        help="the levels to run, by their number of concurrent streams",
    )  # fmt: skip
    parser.add_argument(
        "--no-litellm", dest="litellm", action="store_false", help="leave the peer out"
    )
    parser.add_argument("--saturate", action="store_true", help="measure the log's cost")
    parser.add_argument(
        "--clients", type=int, default=32, help="with --saturate: clients for each server"
    )
    parser.add_argument(
        "--words", action="store_true",
        help="with --saturate: a word in every token, for the log's full-text index",
    )  # fmt: skip
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="with --saturate: a turn's count, in seconds"
    )
    parser.add_argument(
        "--rounds", type=int, default=12, help="with --saturate: rounds, each with new servers"
    )
    parser.add_argument(
        "--turns", type=int, default=3, help="with --saturate: turns of each pair a round"
    )
    parser.add_argument(
        "--control", action="store_true",
        help=f"with --saturate: a second configuration with no log, as '{CONTROL}'",
    )  # fmt: skip
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # A scratch home for the gateways' files, never the user's.
    home = tempfile.TemporaryDirectory(prefix="chatwire-bench-")
    if args.saturate:
        saturate(
            args.clients, args.tokens, args.words, args.seconds, args.rounds, args.turns,
            args.control, home.name,
        )  # fmt: skip
        home.cleanup()
        return
    levels = [(streams, 0.1 if streams >= 1000 else 0.05) for streams in args.streams]
    for streams, interval in levels:
        ramp = args.ramp if streams > 1 else 0.0
        results = measure(streams, args.tokens, interval, ramp, home.name, args.litellm)
        report(streams, args.tokens, results)
    home.cleanup()


if __name__ == "__main__":
    main()
