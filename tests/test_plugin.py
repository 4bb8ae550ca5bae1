"""A provider from another package, found through the ``chatwire.providers`` entry points."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import textwrap
import threading
import types
from pathlib import Path

import httpx
import pytest

import chatwire
from tests.servers import serve

CHATWIRE = shutil.which("chatwire") or "chatwire"

# A plugin written to the seed's module contract, nothing more.
PLUGIN = """
url = "https://example.invalid/echo"
model = ["echo-1"]
supports_stream = True
needs_auth = False


def _create_completion(model: str, messages: list, stream: bool, **kwargs):
    for word in messages[-1]["content"].split():
        yield word[::-1] + " "


params = "chatwire.providers.echo supports: (model: str, messages: list, stream: bool)"
"""


# A plugin written as a Provider class: it declares what it serves.
CLASS_PLUGIN = """
from chatwire.providers import Provider
from chatwire.providers._reply import Reply
from chatwire._validate import Option


class Shout(Provider):
    name = "shout"
    url = "https://example.invalid/shout"
    models = ("shout-1",)
    fields = {"max_tokens": Option("max_tokens", int, "words", minimum=1, maximum=3)}

    def stream(self, request, model, options, transport=None):
        words = request.messages[-1].text.upper().split()[: request.max_tokens or 3]
        return Reply(iter([word + "!" for word in words]), {"finish_reason": "stop"})
"""


def _install(site: Path, module: str, source: str, entry: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    name = module.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[chatwire.providers]\n{entry}\n")
    (info / "RECORD").write_text("")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the plugins are installed as pip installs a distribution."""
    site = tmp_path_factory.mktemp("site")
    _install(site, "chatwire_echo", PLUGIN, "echo = chatwire_echo")
    _install(site, "chatwire_shout", CLASS_PLUGIN, "shout = chatwire_shout:Shout")
    return site


def with_plugin(site: Path, home: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "CHATWIRE_HOME": str(home)}


def test_an_installed_plugin_is_listed_and_answers(site: Path, tmp_path: Path) -> None:
    env = with_plugin(site, tmp_path)
    listing = subprocess.run(
        [CHATWIRE, "providers"], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    (row,) = [line for line in listing.stdout.splitlines() if line.startswith("echo ")]
    assert row.split()[1:] == ["https://example.invalid/echo", "echo-1", "yes", "no", "yes"]
    answer = subprocess.run(
        [CHATWIRE, "-p", "echo", "hello plugin world"],
        capture_output=True, text=True, timeout=60, check=True, env=env,
    )  # fmt: skip
    assert answer.stdout == "olleh nigulp dlrow \n"
    logged = subprocess.run(
        [CHATWIRE, "logs", "--json"], capture_output=True, text=True, timeout=60, check=True,
        env=env,
    )  # fmt: skip
    assert [(e["provider"], e["response"]) for e in json.loads(logged.stdout)] == [
        ("echo", "olleh nigulp dlrow ")
    ]


def test_the_gateway_serves_a_plugin(site: Path, tmp_path: Path) -> None:
    with serve("-p", "echo", env=with_plugin(site, tmp_path)) as gateway:
        models = httpx.get(gateway.url("/v1/models")).json()["data"]
        assert [model["id"] for model in models] == ["echo/echo-1"]
        body = {"model": "echo-1", "messages": [{"role": "user", "content": "abc def"}]}
        reply = httpx.post(gateway.url("/v1/chat/completions"), json=body)
        assert reply.json()["choices"][0]["message"]["content"] == "cba fed "


def test_without_the_plugin_the_name_is_unknown(tmp_path: Path) -> None:
    result = subprocess.run(
        [CHATWIRE, "-p", "echo", "hi"], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "CHATWIRE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown provider 'echo'" in result.stderr


def test_a_provider_class_plugin_is_served_within_what_it_declares(
    site: Path, tmp_path: Path
) -> None:
    with serve("-p", "shout,echo", env=with_plugin(site, tmp_path)) as gateway:
        models = httpx.get(gateway.url("/v1/models")).json()["data"]
        assert [model["id"] for model in models] == ["shout/shout-1", "echo/echo-1"]
        ask = {"model": "shout-1", "messages": [{"role": "user", "content": "one two three four"}]}
        reply = httpx.post(gateway.url("/v1/chat/completions"), json={**ask, "max_tokens": 2})
        assert reply.json()["choices"][0]["message"]["content"] == "ONE!TWO!"
        for field, says in [
            ({"max_tokens": 9}, "max_tokens: provider 'shout' takes words, got 9"),
            ({"temperature": 0.1}, "temperature: provider 'shout' cannot serve it"),
            ({"tools": [{"type": "function", "function": {"name": "f"}}]},
             "tools: provider 'shout' cannot call tools"),
        ]:  # fmt: skip
            refused = httpx.post(gateway.url("/v1/chat/completions"), json={**ask, **field})
            assert refused.status_code == 400
            assert refused.json()["error"]["message"] == says


def test_cancelling_a_sync_only_plugin_mid_answer_cancels_cleanly() -> None:
    """Its generator runs on a thread; the cancel waits for the piece in flight, then closes it."""
    inside = threading.Event()
    release = threading.Event()
    closed = threading.Event()
    plugin = types.ModuleType("slow_plugin")

    def _create_completion(model: str, messages: list, stream: bool, **kwargs: object):  # type: ignore[no-untyped-def, type-arg]
        try:
            yield "first "
            inside.set()
            release.wait(60)  # the thread is inside next() when the task is cancelled
            yield "second"
        finally:
            closed.set()

    plugin.__dict__.update(
        url="https://example.invalid", model=["slow-1"], supports_stream=True,
        needs_auth=False, _create_completion=_create_completion,
    )  # fmt: skip

    async def main() -> None:
        stream = await chatwire.ChatCompletion.acreate(
            messages=[{"role": "user", "content": "hi"}], provider=plugin, stream=True
        )

        async def read() -> None:
            async for _ in stream:
                pass

        task = asyncio.ensure_future(read())
        await asyncio.to_thread(inside.wait, 60)
        task.cancel()
        await asyncio.sleep(0)
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert closed.is_set()
