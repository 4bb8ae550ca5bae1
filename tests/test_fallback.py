"""Retries before the first piece, and fallback across providers, against real servers."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import chatwire
from chatwire import AllProvidersFailed, ProviderHTTPError, StreamInterrupted
from chatwire.store import Store
from tests.servers import ScriptedServer, ThreadedServer, refused_url

USER = [{"role": "user", "content": "hi"}]


def forefront_at(server: ThreadedServer, path: str, **options: object) -> str:
    return chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", base_url=server.url(path), **options
    )


def test_transient_failures_are_retried(server: ThreadedServer, server_app: ScriptedServer) -> None:
    assert forefront_at(server, "/flaky") == "Hello, world!"
    assert server_app.hits["flaky"] == 3  # two 503s, then the answer


def test_retries_are_bounded(server: ThreadedServer, server_app: ScriptedServer) -> None:
    with pytest.raises(ProviderHTTPError) as caught:
        forefront_at(server, "/flaky", max_retries=1)
    assert caught.value.status_code == 503
    assert server_app.hits["flaky"] == 2


def test_client_errors_are_not_retried(server: ThreadedServer, server_app: ScriptedServer) -> None:
    with pytest.raises(ProviderHTTPError, match="bad key"):
        forefront_at(server, "/unauthorized")
    assert len(server_app.requests) == 1


def test_retry_after_is_honoured(
    server: ThreadedServer,
    server_app: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
    retry_waits: list[float],
) -> None:
    with caplog.at_level(logging.DEBUG, logger="chatwire"):
        assert forefront_at(server, "/rate-limited-once") == "Hello, world!"
    assert server_app.hits["rate_limited_once"] == 2
    assert retry_waits == [0.05]
    assert any("retrying forefront in 0.05s" in r.getMessage() for r in caplog.records)


def test_bad_max_retries_is_rejected() -> None:
    with pytest.raises(chatwire.InvalidRequest, match="max_retries"):
        chatwire.ChatCompletion.create(messages=USER, provider="forefront", max_retries=-1)


@pytest.fixture
def forefront_down(server: ThreadedServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Forefront configured (so it counts as working) but pointing at a refused port;
    the OpenAI provider pointed at the scripted server. In a fallback list each
    provider takes its URL from its own environment variable."""
    url = refused_url()
    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", url)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url("/openai/v1"))
    return url


def test_falls_back_to_the_next_provider(
    server: ThreadedServer, forefront_down: str, tmp_path: Path
) -> None:
    store = Store(tmp_path / "log.db")
    with chatwire.ChatCompletion.create(
        messages=USER,
        provider=["forefront", "openai"],
        model=None,
        stream=True,
        max_retries=0,
        store=store,
    ) as stream:
        text = "".join(stream)
    assert text == "Hello, world!"
    assert (stream.provider, stream.model) == ("openai", "gpt-4o-mini")
    (exchange,) = store.recent()
    assert (exchange.provider, exchange.status) == ("openai", "complete")


def test_all_failing_names_every_provider(
    forefront_down: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", refused_url())
    with pytest.raises(AllProvidersFailed) as caught:
        chatwire.ChatCompletion.create(messages=USER, provider="forefront,openai", max_retries=0)
    names = [name for name, _ in caught.value.errors]
    assert names == ["forefront", "openai"]
    assert all(isinstance(error, chatwire.ProviderUnreachable) for _, error in caught.value.errors)
    assert "forefront:" in str(caught.value)
    assert "openai:" in str(caught.value)


def test_no_switch_once_text_has_arrived(
    server: ThreadedServer, server_app: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", server.url("/drop"))
    monkeypatch.setenv("OPENAI_BASE_URL", server.url("/openai/v1"))
    with pytest.raises(StreamInterrupted) as caught:
        list(chatwire.ChatCompletion.create(messages=USER, provider="forefront,openai",
                                            stream=True))  # fmt: skip
    assert caught.value.partial == "partial answer"
    assert [r.path for r in server_app.requests] == ["/drop"]  # openai was never asked


def test_providers_marked_not_working_are_skipped_unless_alone(
    server: ThreadedServer, server_app: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATWIRE_FOREFRONT_URL", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url("/openai/v1"))
    assert chatwire.providers.forefront.working is False
    # (The scripted OpenAI route always streams, so ask for a stream.)
    text = "".join(
        chatwire.ChatCompletion.create(messages=USER, provider=["forefront", "openai"], stream=True)
    )
    assert text == "Hello, world!"
    assert [r.path for r in server_app.requests] == ["/openai/v1/chat/completions"]
    assert forefront_at(server, "/free-chat") == "Hello, world!"  # named alone: used


def test_async_fallback(server: ThreadedServer, forefront_down: str) -> None:
    async def main() -> tuple[str, str]:
        stream = await chatwire.ChatCompletion.acreate(
            messages=USER, provider=["forefront", "openai"], stream=True, max_retries=0,
        )  # fmt: skip
        return "".join([piece async for piece in stream]), stream.provider

    assert asyncio.run(main()) == ("Hello, world!", "openai")


def test_fallback_from_the_command_line(server: ThreadedServer, forefront_down: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "chatwire"), "-p", "forefront,openai",
         "-o", "max_retries=0", "hi"],
        capture_output=True, text=True, timeout=120, check=False, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!\n"
