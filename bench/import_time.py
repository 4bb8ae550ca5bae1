"""How long ``import chatwire`` and its first answer take, next to its peers.

Import: for each module, a fresh interpreter (the bench venv's Python) runs
``python -X importtime -P -c "import NAME"``: once to warm up (so .pyc files
exist; they are cached under the venv), then several timed runs. The time is
the cumulative microseconds that ``-X importtime`` reports on the module's
own top-level line; the median over the runs is reported.

First use: a fresh interpreter imports the library and streams one answer
(20 tokens) from a fake OpenAI-compatible server on 127.0.0.1
(``_fake_upstream.py``), the way the library's own documentation does it;
the time from before the import to the last token, median over the runs.
What a short script or a command-line tool pays once per run.

litellm is told to use its bundled model price list instead of downloading
one. A peer that fails is reported with its error and skipped.

Run: ``python bench/import_time.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


# Each prints the milliseconds from before its import to its last token; BASE is
# the fake server's /v1 URL. llm reaches it as an extra OpenAI model (LLM_USER_PATH).
FIRST_USE = {
    "chatwire": """
import chatwire
stream = chatwire.ChatCompletion.create(
    messages=[{"role": "user", "content": "hi"}], provider="openai", model="m",
    base_url=BASE, api_key="k", stream=True)
text = "".join(stream)
""",
    "openai": """
import openai
client = openai.OpenAI(base_url=BASE, api_key="k")
stream = client.chat.completions.create(
    model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
""",
    "litellm": """
import litellm
stream = litellm.completion(
    model="openai/m", api_base=BASE, api_key="k",
    messages=[{"role": "user", "content": "hi"}], stream=True)
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
""",
    "llm": """
import llm
model = llm.get_model("bench")
text = "".join(model.prompt("hi", stream=True))
""",
}
FIRST_USE_TOKENS = 20


def first_use_once(library: str, base: str, llm_home: str) -> float:
    """Milliseconds from before ``import`` to the last token, in a fresh interpreter."""
    script = (
        "import time; start = time.perf_counter()\n"
        f"BASE = {base!r}\n" + FIRST_USE[library] + "\n"
        f"assert text == {'@@ ' * FIRST_USE_TOKENS!r}, repr(text)\n"
        "print((time.perf_counter() - start) * 1000)\n"
    )
    env = {**ENV, "LLM_USER_PATH": llm_home, "OPENAI_API_KEY": "k"}
    result = subprocess.run(
        [sys.executable, "-P", "-c", script], capture_output=True, text=True,
        timeout=TIMEOUT, cwd=BENCH, env=env, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise ImportFailed(lines[-1] if lines else f"exit status {result.returncode}")
    return float(result.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_use(runs: int) -> dict[str, float]:
    port = _free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(BENCH / "_fake_upstream.py"), str(port),
         "--tokens", str(FIRST_USE_TOKENS), "--interval", "0", "--lifetime", "600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    times: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the fake upstream did not start") from None
                time.sleep(0.05)
        with tempfile.TemporaryDirectory(prefix="chatwire-bench-llm-") as llm_home:
            Path(llm_home, "extra-openai-models.yaml").write_text(
                f"- model_id: bench\n  model_name: m\n  api_base: {base}\n"
            )
            for library in FIRST_USE:
                try:
                    first_use_once(library, base, llm_home)  # warm-up
                    runs_ms = [first_use_once(library, base, llm_home) for _ in range(runs)]
                except (ImportFailed, subprocess.TimeoutExpired) as exc:
                    print(f"first_use {library}: failed: {exc}", flush=True)
                    continue
                times[library] = statistics.median(runs_ms)
                print(
                    f"first_use {library}: {times[library]:.1f} ms to import and stream "
                    f"{FIRST_USE_TOKENS} tokens (median of {runs})",
                    flush=True,
                )
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)
    return times


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
    print(summary, flush=True)

    used = first_use(args.runs)
    peers = {name: ms for name, ms in used.items() if name != SUBJECT}
    if SUBJECT in used and peers:
        fastest = min(peers, key=peers.__getitem__)
        print(
            f"first use {SUBJECT}: {used[SUBJECT]:.1f} ms; fastest peer: {fastest} "
            f"{peers[fastest]:.1f} ms; ratio = {peers[fastest] / used[SUBJECT]:.1f}x"
        )


if __name__ == "__main__":
    main()
