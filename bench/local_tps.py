"""Embedded-model speed: chatwire's local provider against llama.cpp used directly.

Both sides load the same GGUF with the same settings (every core, the same
context size, greedy sampling with a fixed seed, the same prompt and token
budget) in one process, and run interleaved, alternating which goes first, so drift in machine load
hits both alike. Reported: tokens/second (pieces of text per second of the whole call)
and time to first token, medians of several runs. Also times ``chatwire
--help`` against ``llm --help`` (simonw/llm, installed beside chatwire).

Run: python bench/local_tps.py [--runs 5] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import chatwire
from chatwire.providers import local

PROMPT = [{"role": "user", "content": "Why is the sky blue? Explain in a few sentences."}]


def timed(pieces: Callable[[], Iterator[str]]) -> tuple[float, float, str]:
    """(tokens/second, seconds to first token, text) for one generation."""
    start = time.perf_counter()
    first = 0.0
    count = 0
    text = []
    for piece in pieces():
        if not count:
            first = time.perf_counter() - start
        count += 1
        text.append(piece)
    total = time.perf_counter() - start
    return count / total, first, "".join(text)


def command_ms(argv: list[str], runs: int) -> float:
    """Median wall time of a command, in milliseconds, after one warm-up."""
    samples = []
    for index in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        if index:
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    from llama_cpp import Llama

    threads = len(os.sched_getaffinity(0))
    settings = {"temperature": 0.0, "seed": 1, "max_tokens": args.max_tokens}
    path = str(local.default_model_path())
    direct = Llama(
        model_path=path, n_ctx=local.DEFAULT_CONTEXT, n_threads=threads,
        n_threads_batch=threads, verbose=False,
    )  # fmt: skip

    def via_llama_cpp() -> Iterator[str]:
        # chatwire starts each request from a clean context (no reuse of the
        # previous prompt's cache) so greedy answers repeat; do the same here.
        direct.reset()
        for chunk in direct.create_chat_completion(messages=PROMPT, stream=True, **settings):  # type: ignore[arg-type]
            text = chunk["choices"][0]["delta"].get("content")  # type: ignore[index,union-attr]
            if text:
                yield text

    def via_chatwire() -> Iterator[str]:
        return chatwire.ChatCompletion.create(messages=PROMPT, stream=True, **settings)

    # Warm both: model load, page cache, first-call set-up.
    timed(via_llama_cpp)
    timed(via_chatwire)
    results: dict[str, list[tuple[float, float, str]]] = {"llama.cpp": [], "chatwire": []}
    runners = {"llama.cpp": via_llama_cpp, "chatwire": via_chatwire}
    for run in range(args.runs):
        # Alternate who goes first, so the position in a pair favours neither.
        order = ["llama.cpp", "chatwire"] if run % 2 == 0 else ["chatwire", "llama.cpp"]
        for name in order:
            results[name].append(timed(runners[name]))
    assert results["llama.cpp"][0][2] == results["chatwire"][0][2], "outputs differ"

    medians = {
        name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for name, runs in results.items()
    }
    for name, (tps, ttft) in medians.items():
        print(f"local_tps {name:9}: {tps:6.1f} tokens/s, first token {ttft * 1000:6.1f} ms")
    ratio = medians["chatwire"][0] / medians["llama.cpp"][0]
    print(
        f"local_tps chatwire/llama.cpp tokens/s = {ratio:.3f}x (bar >= 0.95x); "
        f"{threads} threads, n_ctx {local.DEFAULT_CONTEXT}, {args.max_tokens} tokens max, "
        f"median of {args.runs}"
    )

    bin_dir = Path(sys.executable).parent
    ours = command_ms([str(bin_dir / "chatwire"), "--help"], runs=10)
    llm = shutil.which("llm", path=str(bin_dir)) or shutil.which("llm")
    baseline = command_ms([sys.executable, "-c", "pass"], runs=10)
    line = (
        f"cli_help chatwire --help: {ours:.0f} ms (bar < 150 ms); python -c pass: {baseline:.0f} ms"
    )
    if llm:
        theirs = command_ms([llm, "--help"], runs=10)
        line += f"; llm --help: {theirs:.0f} ms; llm/chatwire = {theirs / ours:.1f}x"
    print(line)


if __name__ == "__main__":
    main()
