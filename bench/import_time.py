"""How long ``import chatwire`` takes, next to the libraries it competes with.

For each module, a fresh interpreter (the bench venv's Python) runs
``python -X importtime -P -c "import NAME"``: once to warm up (so .pyc files
exist; they are cached under the venv), then several timed runs. The time is
the cumulative microseconds that ``-X importtime`` reports on the module's
own top-level line; the median over the runs is reported. litellm is told to
use its bundled model price list instead of downloading one while it
imports. A peer that fails to import is reported with its error and skipped.

Run: ``python bench/import_time.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

from _env import BENCH, VENV, ensure_venv

SUBJECT = "chatwire"
PEERS = ("g4f", "litellm", "openai", "llm")
TIMEOUT = 120.0
# Bytecode is cached (this machine may set PYTHONDONTWRITEBYTECODE) under the
# venv rather than in src/, so the warm-up run leaves .pyc files for every module.
# litellm otherwise tries to download its model price list while importing;
# this makes it use its bundled copy, so only the import itself is timed.
ENV = {
    **{name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPYCACHEPREFIX": str(VENV / "pycache"),
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}


class ImportFailed(Exception):
    pass


def import_once(module: str) -> float:
    """Milliseconds ``import module`` took in a fresh interpreter."""
    # -P keeps the working directory off sys.path, so only installed code is found.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-P", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=BENCH,
        env=ENV,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise ImportFailed(lines[-1] if lines else f"exit status {result.returncode}")
    # Lines look like "import time:   self_us | cumulative_us | <indent>name";
    # the module itself is the one line with no indent.
    for line in result.stderr.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[2].rstrip() == f" {module}":
            return int(fields[1]) / 1000
    raise ImportFailed(f"no importtime line for {module!r} (already imported at startup?)")


def median_ms(module: str, runs: int) -> float:
    import_once(module)  # warm-up: writes .pyc files, fills the OS cache
    return statistics.median(import_once(module) for _ in range(runs))


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description="Import time: chatwire vs peers.")
    parser.add_argument("--runs", type=int, default=7, help="timed imports per module")
    args = parser.parse_args()

    times: dict[str, float] = {}
    for module in (SUBJECT, *PEERS):
        try:
            times[module] = median_ms(module, args.runs)
        except (ImportFailed, subprocess.TimeoutExpired) as exc:
            print(f"import_time {module}: failed: {exc}", flush=True)
            continue
        print(f"import_time {module}: {times[module]:.1f} ms (median of {args.runs})", flush=True)

    if SUBJECT not in times:
        sys.exit(f"import_time: {SUBJECT} itself does not import")
    peers = {name: ms for name, ms in times.items() if name != SUBJECT}
    summary = f"import {SUBJECT}: {times[SUBJECT]:.1f} ms (bar < 60 ms)"
    if peers:
        fastest = min(peers, key=peers.__getitem__)
        ratio = peers[fastest] / times[SUBJECT]
        summary += f"; fastest peer: {fastest} {peers[fastest]:.1f} ms; ratio = {ratio:.1f}x"
        summary += " (bar >= 5x)"
    else:
        summary += "; no peer imported"
    print(summary)


if __name__ == "__main__":
    main()
