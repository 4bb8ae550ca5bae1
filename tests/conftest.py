from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ScriptedServer, ThreadedServer


@pytest.fixture(scope="session")
def server_app() -> ScriptedServer:
    return ScriptedServer()


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
