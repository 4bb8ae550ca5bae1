"""A provider from another package, found through the ``chatwire.providers`` entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where the plugin is installed as pip installs a distribution."""
    site = tmp_path_factory.mktemp("site")
    (site / "chatwire_echo.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "chatwire_echo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chatwire-echo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[chatwire.providers]\necho = chatwire_echo\n")
    (info / "RECORD").write_text("")
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
    assert [e["response"] for e in json.loads(logged.stdout)] == ["olleh nigulp dlrow "]


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
