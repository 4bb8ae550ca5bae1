"""Text beyond ASCII, end to end: the command, the gateway and the log's search."""

# ruff: noqa: RUF001  (Greek and Cyrillic letters are the point here)

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import openai

from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import ScriptedServer, ThreadedServer, running

CHATWIRE = shutil.which("chatwire") or "chatwire"
PROMPT = "Скажи «привет» по-гречески, ελληνικά, 你好 🌍"
PIECES = ["Γειά", " σου", ", κόσμε", " — Привет, мир! ", "你好", " 🌍", "\u00e9\u0301"]
ANSWER = "".join(PIECES)


def run(*args: str, home: Path, locale: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATWIRE, *args], input="", capture_output=True, text=True, encoding="utf-8",
        timeout=120, check=False,
        env={**os.environ, "CHATWIRE_HOME": str(home), "LC_ALL": locale},
    )  # fmt: skip


def test_the_command_sends_prints_and_finds_it_again(
    server: ThreadedServer, server_app: ScriptedServer, tmp_path: Path
) -> None:
    server_app.pieces = PIECES
    upstream = ["-p", "forefront", "-o", f"base_url={server.url('/free-chat')}"]
    for locale in ("C.UTF-8", "C"):  # Python speaks UTF-8 in the C locale too
        result = run(*upstream, PROMPT, home=tmp_path, locale=locale)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ANSWER + "\n"
        assert server_app.requests[-1].json["text"] == PROMPT
    for query in ("привет", "ПРИВЕТ", "κόσμε", "你好"):
        found = run("logs", "--json", "-q", query, home=tmp_path)
        assert found.returncode == 0, found.stderr
        exchanges = json.loads(found.stdout)
        assert [e["response"] for e in exchanges] == [ANSWER, ANSWER], query
        assert exchanges[0]["messages"][-1]["content"] == PROMPT
    shown = run("logs", "-n", "1", home=tmp_path)
    assert f"> {PROMPT}\n{ANSWER}\n" in shown.stdout


def test_the_gateway_carries_it_both_ways(
    server: ThreadedServer, server_app: ScriptedServer, tmp_path: Path
) -> None:
    server_app.pieces = PIECES
    store = Store(tmp_path / "log.db")
    app = create_app("forefront", store=store, options={"base_url": server.url("/free-chat")})
    with running(app) as gateway:
        client = openai.OpenAI(base_url=gateway.url("/v1"), api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]
        whole = client.chat.completions.create(model="forefront", messages=messages)  # type: ignore[arg-type]
        assert whole.choices[0].message.content == ANSWER
        stream = client.chat.completions.create(
            model="forefront",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ANSWER
        free_chat = httpx.post(gateway.url("/free-chat"), json={"text": PROMPT, "messages": []})
        deltas = [json.loads(line[6:])["delta"] for line in free_chat.text.split("\n\n") if line]
        assert "".join(deltas) == ANSWER
        listing = httpx.get(gateway.url("/v1/conversations")).json()["data"]
        assert {conversation["title"] for conversation in listing} == {PROMPT}
    assert all(request.json["text"] == PROMPT for request in server_app.requests)
    assert [e.response for e in store.search("мир")] == [ANSWER] * 3
