from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.postgres import PostgresCluster
from tests.servers import ScriptedServer, ThreadedServer

# What a developer's shell sets must not change a result: chatwire's own
# settings, the openai SDK's and LangChain's, proxies and CA bundles are cleared before
# anything reads them (chatwire reads proxies once per process).
_CLEARED_PREFIXES = ("CHATWIRE_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_")
_CLEARED_NAMES = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ssl_cert_file", "ssl_cert_dir",
     "requests_ca_bundle", "curl_ca_bundle"}
)  # fmt: skip
for _name in list(os.environ):
    if _name.startswith(_CLEARED_PREFIXES) or _name.lower() in _CLEARED_NAMES:
        del os.environ[_name]

# A shell starts background jobs with SIGINT ignored, and every child would
# inherit that; the tests of Ctrl-C need it delivered as usual.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# A shared machine can pause any example for a second; that is not a failure.
# In CI the examples are the same on every run and machine, so a result
# changes only with the code; a developer's runs keep exploring.
settings.register_profile("chatwire", deadline=None)
settings.register_profile("chatwire-ci", deadline=None, derandomize=True, database=None)
settings.load_profile("chatwire-ci" if os.environ.get("CI") else "chatwire")


class RetryWaits(list[float]):
    """The waits retries asked for, recorded instead of slept."""


@pytest.fixture(autouse=True)
def retry_waits(monkeypatch: pytest.MonkeyPatch) -> RetryWaits:
    """Retries do not sleep in tests; what they would have waited is kept here."""
    from chatwire._fallback import RetryWait

    waits = RetryWaits()

    def record(seconds: float) -> None:
        waits.append(seconds)

    async def arecord(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(RetryWait, "sleep", staticmethod(record))
    monkeypatch.setattr(RetryWait, "asleep", staticmethod(arecord))
    return waits


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


@pytest.fixture(scope="session")
def local_gateway() -> Iterator[ThreadedServer]:
    """The gateway in front of the embedded model, on loopback, for the whole session."""
    from chatwire.server import create_app

    with ThreadedServer(create_app("local")) as gateway:
        yield gateway


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of Debian's package, on loopback, for the whole session."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def database(postgres: PostgresCluster) -> str:
    """The URL of a new, empty database of the session's cluster."""
    return postgres.new_database()
