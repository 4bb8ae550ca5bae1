from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ScriptedServer, ThreadedServer


@pytest.fixture(scope="session")
def server_app() -> ScriptedServer:
    return ScriptedServer()


@pytest.fixture(autouse=True)
def _fresh_script(server_app: ScriptedServer) -> None:
    """Each test starts with the scripted server's default answer and no requests."""
    server_app.pieces = ["Hello", ", ", "world", "!"]
    server_app.requests.clear()
    server_app.hits.clear()


@pytest.fixture(scope="session")
def server(server_app: ScriptedServer) -> Iterator[ThreadedServer]:
    with ThreadedServer(server_app) as running:
        yield running


@pytest.fixture
def forefront_server(
    server: ThreadedServer, server_app: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> ThreadedServer:
    """The loopback server, with the Forefront provider pointed at it."""
    server_app.requests.clear()
    server_app.pieces = ["Hello", ", ", "world", "!"]
    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", server.url("/free-chat"))
    return server


@pytest.fixture(scope="session", autouse=True)
def chatwire_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every log the tests write (library, CLI subprocesses, gateway) goes here."""
    home = tmp_path_factory.mktemp("chatwire-home")
    previous = os.environ.get("CHATWIRE_HOME")
    os.environ["CHATWIRE_HOME"] = str(home)
    os.environ.pop("CHATWIRE_NO_LOG", None)
    yield home
    if previous is None:
        os.environ.pop("CHATWIRE_HOME", None)
    else:
        os.environ["CHATWIRE_HOME"] = previous
