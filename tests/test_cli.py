"""The ``chatwire`` command, run as a real subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.servers import ThreadedServer

CHATWIRE = shutil.which("chatwire") or "chatwire"
GREEDY = ["-o", "temperature=0", "-o", "seed=7", "-o", "max_tokens=24"]


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATWIRE, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_answers_a_question_with_the_embedded_model() -> None:
    result = run(*GREEDY, "Why is the sky blue?")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 3
    assert result.stderr == ""  # no spinner when stderr is not a terminal


def test_stream_and_no_stream_print_the_same_answer() -> None:
    streamed = run(*GREEDY, "Why is the sky blue?")
    whole = run(*GREEDY, "--no-stream", "Why is the sky blue?")
    assert streamed.stdout == whole.stdout
    assert streamed.stdout.endswith("\n")


def test_prompt_from_stdin() -> None:
    piped = run(*GREEDY, stdin="Why is the sky blue?")
    dash = run(*GREEDY, "-", stdin="Why is the sky blue?")
    direct = run(*GREEDY, "Why is the sky blue?")
    assert piped.returncode == dash.returncode == 0
    assert piped.stdout == dash.stdout == direct.stdout


def test_system_prompt_changes_the_conversation() -> None:
    plain = run(*GREEDY, "Say hello.")
    steered = run(*GREEDY, "-s", "You only answer in French.", "Say hello.")
    assert plain.returncode == steered.returncode == 0
    assert plain.stdout != steered.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "temperature=9", "hi"], "temperature: provider 'local' takes a number from 0 to 5"),
        (["-p", "nosuch", "hi"], "unknown provider 'nosuch'"),
        (["-m", "llama-70b", "hi"], "does not offer model 'llama-70b'"),
        (["-o", "model_path=/no/such.gguf", "hi"], "cannot read model file '/no/such.gguf'"),
    ],
)
def test_errors_are_one_clear_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("chatwire: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = run("--debug", "-o", "temperature=9", "hi")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "InvalidRequest" in result.stderr


def test_remote_provider_failure_keeps_streamed_text_and_names_the_error(
    server: ThreadedServer,
) -> None:
    result = run("-p", "forefront", "-o", f"base_url={server.url('/drop')}", "hi")
    assert result.returncode == 1
    assert result.stdout == "partial answer\n"
    assert "connection lost after 14 characters" in result.stderr


def test_forefront_provider_through_the_cli(server: ThreadedServer) -> None:
    result = run("-p", "forefront", "hi", env={"CHATWIRE_FOREFRONT_URL": server.url("/free-chat")})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!\n"


def test_providers_table() -> None:
    result = run("providers")
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["name", "url", "models", "stream", "auth", "working"]
    names = [row.split()[0] for row in rows]
    assert names[:2] == ["local", "forefront"]
    assert "smollm2-135m-instruct" in rows[0]


def test_help_and_version() -> None:
    assert "Stream chat completions" in run("--help").stdout
    assert "providers" in run("--help").stdout
    assert "--no-stream" in run("ask", "--help").stdout
    assert run("--version").stdout.startswith("chatwire, version")
