"""The Forefront provider against a real Forefront-protocol server on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest

import chatwire
from chatwire._models import request_from
from chatwire.providers import forefront
from tests.servers import ScriptedServer, ThreadedServer

SEED_URL = "https://streaming.tenant-forefront-default.knative.chi.coreweave.com/free-chat"
SEED_BODY_FIELDS = {
    "action": "noauth",
    "id": "",
    "parentId": "",
    "workspaceId": "",
    "messagePersona": "607e41fe-95be-497e-8e97-010a59b2e2c0",
    "model": "gpt-4",
    "internetMode": "auto",
}


def test_module_contract_matches_the_seed() -> None:
    assert forefront.url == "https://forefront.com"
    assert forefront.model == ["gpt-3.5-turbo"]
    assert forefront.supports_stream is True
    assert forefront.needs_auth is False
    assert forefront.params == (
        "chatwire.providers.forefront supports: (model: str, messages: list, stream: bool)"
    )
    assert forefront.DEFAULT_ENDPOINT == SEED_URL


def test_params_is_computed_from_the_signature() -> None:
    from chatwire.providers._base import describe_params

    def _create_completion(model: str, temperature: float, stream: bool, **kw: object) -> None:
        pass

    assert describe_params("x.y.demo", _create_completion) == (
        "chatwire.providers.demo supports: (model: str, temperature: float, stream: bool)"
    )


def test_seed_example_verbatim(
    forefront_server: ThreadedServer, server_app: ScriptedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatwire.providers.forefront import _create_completion

    # The seed's own example, copied as it stands in the document:
    messages = [{"role": "user", "content": "Hello, Forefront!"}]
    for token in _create_completion(model='gpt-3.5-turbo', messages=messages, stream=True):  # fmt: skip  # noqa: E501
        print(token, end='')  # fmt: skip

    assert capsys.readouterr().out == "Hello, world!"
    (request,) = server_app.requests
    assert (request.method, request.path) == ("POST", "/free-chat")
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"text": "Hello, Forefront!", "messages": [], **SEED_BODY_FIELDS}


def test_wire_body_carries_all_but_the_last_message(
    forefront_server: ThreadedServer, server_app: ScriptedServer
) -> None:
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Naïve café? ✓"},
    ]
    text = chatwire.ChatCompletion.create(messages=conversation, provider="forefront")
    assert text == "Hello, world!"
    body = server_app.requests[-1].json
    assert body == {"text": "Naïve café? ✓", "messages": conversation[:-1], **SEED_BODY_FIELDS}
    # Keys in the seed's order, so the body matches the seed's byte for byte in layout.
    assert list(json.loads(server_app.requests[-1].body)) == [
        "text", "action", "id", "parentId", "workspaceId",
        "messagePersona", "model", "messages", "internetMode",
    ]  # fmt: skip


def test_unified_api_stream_and_whole_text(forefront_server: ThreadedServer) -> None:
    messages = [{"role": "user", "content": "Hello, Forefront!"}]
    pieces = list(
        chatwire.ChatCompletion.create(
            model="gpt-3.5-turbo", messages=messages, provider=chatwire.providers.forefront,
            stream=True,
        )
    )  # fmt: skip
    assert pieces == ["Hello", ", ", "world", "!"]
    assert chatwire.ChatCompletion.create(messages=messages, provider="forefront") == (
        "Hello, world!"
    )


def test_stream_keeps_what_it_received(forefront_server: ThreadedServer) -> None:
    messages = [{"role": "user", "content": "x"}]
    with chatwire.ChatCompletion.create(messages=messages, provider="forefront", stream=True) as s:
        assert next(s) == "Hello"
        assert s.text == "Hello"
        assert (s.provider, s.model) == ("forefront", "gpt-3.5-turbo")


def test_base_url_keyword_overrides_the_environment(
    server: ThreadedServer, server_app: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", "http://127.0.0.1:9/nowhere")
    server_app.requests.clear()
    text = chatwire.ChatCompletion.create(
        messages=[{"role": "user", "content": "x"}],
        provider="forefront",
        base_url=server.url("/free-chat"),
    )
    assert text == "Hello, world!"
    assert len(server_app.requests) == 1


def test_default_endpoint_is_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATWIRE_FOREFRONT_URL", raising=False)
    request = request_from({"messages": [{"role": "user", "content": "x"}]})
    _, options = forefront.provider.check(request, {})
    wire = forefront.provider.wire(request, "gpt-3.5-turbo", options)
    assert wire.url == SEED_URL
    assert forefront.working is False
    monkeypatch.setenv("CHATWIRE_FOREFRONT_URL", "http://127.0.0.1:1/free-chat")
    assert forefront.working is True


def test_async_api(forefront_server: ThreadedServer, server_app: ScriptedServer) -> None:
    messages = [{"role": "user", "content": "Hello, Forefront!"}]

    async def main() -> tuple[list[str], str, list[str]]:
        stream = await chatwire.ChatCompletion.acreate(
            messages=messages, provider="forefront", stream=True
        )
        pieces = [piece async for piece in stream]
        whole = await chatwire.ChatCompletion.acreate(messages=messages, provider="forefront")
        direct = [
            token
            async for token in forefront._create_async_completion(
                model="gpt-3.5-turbo", messages=messages, stream=True
            )
        ]
        return pieces, whole, direct

    pieces, whole, direct = asyncio.run(main())
    assert pieces == direct == ["Hello", ", ", "world", "!"]
    assert whole == "Hello, world!"
    assert [r.json["text"] for r in server_app.requests] == ["Hello, Forefront!"] * 3


def test_seed_style_lines_without_blank_separators(
    forefront_server: ThreadedServer, server_app: ScriptedServer
) -> None:
    # A server written for the seed's line parser may not separate events.
    assert forefront.read_event('{"delta": "a"}\n{"delta": "b"}') == "ab"


@pytest.mark.parametrize(
    ("data", "expected"),
    [('{"delta": "x"}', "x"), ('{"other": 1}', None), ("[1, 2]", None), ('{"delta": null}', None)],
)
def test_read_event_keeps_deltas_and_skips_the_rest(data: str, expected: str | None) -> None:
    assert forefront.read_event(data) == expected
    assert forefront.read_events([data, '{"delta": "!"}'], {}) == [t for t in (expected, "!") if t]


def test_done_ends_the_stream() -> None:
    from chatwire.providers._protocol import EndOfStream

    with pytest.raises(EndOfStream) as caught:
        forefront.read_events(['{"delta": "a"}', "[DONE]", '{"delta": "b"}'], {})
    assert caught.value.texts == ["a"]
