"""The command's conversation log: written by default, continued, listed, searched."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.servers import ScriptedServer, ThreadedServer

CHATWIRE = str(Path(sys.executable).parent / "chatwire")


def run(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATWIRE, *args], input="", capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "CHATWIRE_HOME": str(home), **(env or {})},
    )  # fmt: skip


def logged(home: Path) -> list[dict[str, object]]:
    result = run("logs", "--json", "-n", "100", home=home)
    assert result.returncode == 0, result.stderr
    exchanges: list[dict[str, object]] = json.loads(result.stdout)
    return exchanges


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_ask_logs_by_default_and_continues(
    home: Path, server: ThreadedServer, server_app: ScriptedServer
) -> None:
    server_app.requests.clear()
    ff = ["-p", "forefront", "-o", f"base_url={server.url('/free-chat')}"]
    assert run(*ff, "first question", home=home).stdout == "Hello, world!\n"
    assert run(*ff, "second question", "-c", home=home).returncode == 0
    first, second = logged(home)
    assert first["conversation_id"] == second["conversation_id"]
    assert second["messages"] == [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "Hello, world!"},
        {"role": "user", "content": "second question"},
    ]
    # The continued request carried the whole conversation over the wire.
    assert server_app.requests[-1].json["messages"] == second["messages"][:-1]  # type: ignore[index]


def test_no_log_flag_and_environment(home: Path, server: ThreadedServer) -> None:
    ff = ["-p", "forefront", "-o", f"base_url={server.url('/free-chat')}"]
    assert run(*ff, "x", home=home).returncode == 0
    assert run(*ff, "--no-log", "y", home=home).returncode == 0
    assert run(*ff, "z", home=home, env={"CHATWIRE_NO_LOG": "1"}).returncode == 0
    assert [e["messages"][-1]["content"] for e in logged(home)] == ["x"]  # type: ignore[index]


def test_logs_listing_search_and_path(home: Path, server: ThreadedServer) -> None:
    ff = ["-p", "forefront", "-o", f"base_url={server.url('/free-chat')}"]
    run(*ff, "about whales", home=home)
    run("-p", "forefront", "-o", f"base_url={server.url('/drop')}", "about sharks", home=home)
    listing = run("logs", home=home).stdout
    assert "> about whales" in listing
    assert "> about sharks" in listing
    assert "INTERRUPTED" in listing
    assert "partial answer" in listing
    found = json.loads(run("logs", "-q", "sharks", "--json", home=home).stdout)
    assert [e["status"] for e in found] == ["interrupted"]
    cid = found[0]["conversation_id"]
    assert "about sharks" in run("logs", "--cid", cid, home=home).stdout
    assert run("logs", "path", home=home).stdout.strip() == str(home / "logs.db")


def test_continue_without_a_log_is_a_clear_error(home: Path) -> None:
    result = run("-c", "hello", home=home)
    assert result.returncode == 1
    assert "no conversation" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_in_a_terminal_survives_ctrl_c_and_resumes(home: Path, server: ThreadedServer) -> None:
    env = {**os.environ, "CHATWIRE_HOME": str(home), "TERM": "dumb"}
    # The first answer is short; the second goes on until Ctrl-C stops it.
    upstream = ["-p", "forefront", "-o", f"base_url={server.url('/once-then-endless')}"]
    chat = pexpect.spawn(CHATWIRE, ["chat", *upstream], env=env, encoding="utf-8", timeout=120)
    try:
        chat.expect("Ctrl-D or 'exit' leaves")
        chat.expect("> ")
        chat.sendline("Say hello.")
        chat.expect("> ")  # the answer streamed, then the prompt came back
        first_answer = chat.before
        story = "Write a long story about a dragon and a knight."
        chat.sendline(story)
        chat.expect_exact(story + "\r\n")  # the terminal's echo of the line
        chat.expect(r"t0 t1 t2")  # some of the answer has streamed
        chat.sendintr()
        chat.expect(re.escape("[answer stopped]"))
        chat.expect("> ")
        chat.sendeof()
        chat.expect(pexpect.EOF)
    finally:
        chat.close()
    assert chat.exitstatus == 0
    assert "Hello, world!" in first_answer
    first, second = logged(home)
    assert first["conversation_id"] == second["conversation_id"]
    assert first["status"] == "complete"
    assert second["status"] == "interrupted"
    assert second["error"] == "stopped before the end"
    assert str(second["response"]).startswith("t0 t1 t2")
    assert second["messages"][1]["role"] == "assistant"  # type: ignore[index]

    resumed = pexpect.spawn(CHATWIRE, ["chat", "-c"], env=env, encoding="utf-8", timeout=120)
    try:
        resumed.expect("continuing after 4 messages")
        resumed.expect("> ")
        resumed.sendline("exit")
        resumed.expect(pexpect.EOF)
    finally:
        resumed.close()
    assert resumed.exitstatus == 0
