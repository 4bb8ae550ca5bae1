"""Run every bench inside its own venv, ``bench/.venv``, next to this file.

A bench calls ``ensure_venv()`` before importing any peer. Outside the venv
that creates it (once), installs chatwire (editable) and the peer libraries
into it, and re-executes the same script with the venv's Python. A marker
file records what was installed, so the install only happens again when the
list below changes. ``python bench/_env.py`` just prepares the venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = BENCH / ".venv"
PYTHON = VENV / "bin" / "python"
MARKER = VENV / "bench-installed.txt"
# fastapi and python-multipart: what `g4f api` needs beyond g4f itself (bench/load.py);
# litellm[proxy]: LiteLLM's gateway, the peer of bench/gateway.py.
PEERS = (
    "openai", "httpx-sse", "requests", "g4f", "fastapi", "python-multipart", "litellm[proxy]",
    "llm", "pydantic",
)  # fmt: skip


def stop(*processes: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """End each of ``processes``: asked to (SIGTERM), then made to (SIGKILL)."""
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def prepare() -> None:
    """Create the venv and install into it, unless the marker says it's done."""
    wanted = ["-e", f"{ROOT}[postgres]", *PEERS]  # the extra: bench/log_write.py
    if MARKER.exists() and MARKER.read_text().split("\n") == wanted:
        return
    if not PYTHON.exists():
        print(f"bench: creating {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print(f"bench: installing {' '.join(wanted)}", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *wanted], check=True)
    MARKER.write_text("\n".join(wanted))


def ensure_venv() -> None:
    """Return if already in the bench venv; otherwise prepare it and re-exec there."""
    if in_venv():
        return
    prepare()
    os.execv(PYTHON, [str(PYTHON), *sys.argv])


if __name__ == "__main__":
    prepare()
    print(PYTHON)
