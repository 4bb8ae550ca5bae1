"""Writing the conversation log: the batched writer against one transaction per exchange.

Each exchange is what the gateway logs for one answer: a user message, a
400-character answer, logged ``open`` when it starts and again when it ends.

- batched: ``Recorder`` objects, as the library and the gateway use them;
  the records go to the store's writer thread, which writes whatever has
  queued in one transaction (an exchange that started and ended while the
  thread was busy is written once, ended). Timed from the first record to
  ``flush()`` returning, everything committed.
- one per exchange: ``Store.record`` for each exchange, one transaction
  each, as chatwire wrote its log inline before the writer.

Both run on SQLite (a new file) and on PostgreSQL (a throwaway cluster of
Debian's package, as the tests make it; or the database
``CHATWIRE_DATABASE_URL`` names), in the same run. The bar: batched >= 5x.

Run: python bench/log_write.py [--count 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from _env import ensure_venv
from _postgres import postgres_url

ANSWER = "The sea is salty because rivers carry dissolved minerals into it. " * 6


def exchanges(count: int, tag: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Each exchange's conversation and messages."""
    for number in range(count):
        yield (
            f"{tag}-{number % 50}",
            [{"role": "user", "content": f"why is the sea salty? ({tag} {number})"}],
        )


def batched(store: object, count: int, tag: str) -> float:
    from chatwire.store import Recorder

    start = time.perf_counter()
    for conversation, messages in exchanges(count, tag):
        recorder = Recorder(store, conversation, "openai", "gpt-4o-mini", messages)  # type: ignore[arg-type]
        recorder.first_piece()
        recorder.pieces.append(ANSWER)
        recorder.finish(None, {})
    assert store.flush(600)  # type: ignore[attr-defined]
    return count / (time.perf_counter() - start)


def one_per_exchange(store: object, count: int, tag: str) -> float:
    from chatwire.store import Exchange

    start = time.perf_counter()
    for conversation, messages in exchanges(count, tag):
        exchange = Exchange(conversation, "openai", "gpt-4o-mini", messages, ANSWER)
        assert store.record(exchange) is not None  # type: ignore[attr-defined]
    return count / (time.perf_counter() - start)


def measure(name: str, store: object, count: int, repeats: int) -> None:
    best: dict[str, float] = {}
    ways: dict[str, Callable[[object, int, str], float]] = {
        "batched": batched, "one per exchange": one_per_exchange,
    }  # fmt: skip
    for repeat in range(repeats):
        for way, run in ways.items():
            rate = run(store, count, f"{way}-{repeat}")
            best[way] = max(best.get(way, 0.0), rate)
    for way, rate in best.items():
        print(f"log_write {name:10} {way:16}: {rate:9,.0f} exchanges/s")
    ratio = best["batched"] / best["one per exchange"]
    print(f"log_write {name:10} batched/one per exchange = {ratio:.1f}x (bar >= 5x)")
    sys.stdout.flush()


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="exchanges per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    from chatwire.store import Store

    with tempfile.TemporaryDirectory(prefix="chatwire-bench-") as home:
        with Store(Path(home) / "logs.db") as store:
            measure("sqlite", store, args.count, args.repeats)
        with postgres_url() as url, Store(url) as store:
            measure("postgresql", store, args.count, args.repeats)


if __name__ == "__main__":
    main()
