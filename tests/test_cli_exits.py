"""How the command ends: exit codes, Ctrl-C, a closed pipe, empty input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from chatwire.store import Store
from tests.servers import ThreadedServer

CHATWIRE = shutil.which("chatwire") or "chatwire"


def endless(server: ThreadedServer) -> list[str]:
    """Arguments for an answer that streams until the command stops reading."""
    return ["-p", "forefront", "-o", f"base_url={server.url('/endless')}"]


def start(*args: str, home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CHATWIRE, *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "CHATWIRE_HOME": str(home)},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-flag", "hi"], "No such option"),
        (["serve", "--port", "eighty"], "is not a valid integer"),
        (["-o", "temperature", "hi"], "is not of the form key=value"),
        (["-o", "store=x", "hi"], "is not a provider option"),
        (["-o", "temperature=hot", "hi"], "option temperature: expected `float | null`, got 'hot'"),
    ],
)
def test_a_usage_error_exits_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [CHATWIRE, *args], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "CHATWIRE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("stdin", ["", "  \n\n"])
def test_empty_standard_input_is_a_clear_usage_error(stdin: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [CHATWIRE], input=stdin, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "CHATWIRE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "chatwire: error: the prompt read from standard input is empty\n"


def test_ctrl_c_stops_the_answer_and_exits_130(server: ThreadedServer, tmp_path: Path) -> None:
    process = start(*endless(server), "count", home=tmp_path)
    assert process.stdout is not None
    received = process.stdout.read(8)  # the answer is streaming
    assert received.startswith(b"t0 t1")
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert b"Traceback" not in errors
    # What was shown is in the log, marked as cut short.
    (exchange,) = Store(tmp_path / "logs.db").recent()
    assert exchange.status == "interrupted"
    assert exchange.response.startswith("t0 t1")
    assert (received + rest).decode().startswith("t0 t1")
    assert server.wait_for_connections(0) == 0


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(
    server: ThreadedServer, tmp_path: Path
) -> None:
    # chatwire ... | head -c 10
    process = start(*endless(server), "count", home=tmp_path)
    assert process.stdout is not None
    assert process.stderr is not None
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()
    errors = process.stderr.read()
    assert process.wait(timeout=60) == 1  # the answer was not all written
    assert errors == b""
    (exchange,) = Store(tmp_path / "logs.db").recent()
    assert exchange.status == "interrupted"
    assert server.wait_for_connections(0) == 0
