"""What a keyless gateway answers, and to whom: Host checks and CORS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import ThreadedServer, running


@pytest.fixture(scope="module")
def keyless(
    server: ThreadedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    store = Store(Path(tmp_path_factory.mktemp("exposure")) / "log.db")
    app = create_app("forefront", store=store, options={"base_url": server.url("/free-chat")})
    with running(app) as gateway:
        yield gateway


def get(gateway: ThreadedServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(gateway.url(path), headers=headers)


@pytest.mark.parametrize("path", ["/v1/conversations", "/v1/models", "/healthz", "/"])
def test_a_foreign_host_is_refused_without_a_key(keyless: ThreadedServer, path: str) -> None:
    # What a page on attacker.example sends once its name points at 127.0.0.1.
    reply = get(keyless, path, host=f"attacker.example:{keyless.port}")
    assert reply.status_code == 400
    assert "attacker" not in reply.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_loopback_names_are_served(keyless: ThreadedServer, host: str) -> None:
    assert get(keyless, "/v1/conversations", host=f"{host}:{keyless.port}").status_code == 200
    assert get(keyless, "/v1/conversations", host=host).status_code == 200


def test_named_hosts_are_served_too(server: ThreadedServer) -> None:
    app = create_app("forefront", allowed_hosts=["box.lan", "::1", "10.1.2.3"])
    with running(app) as gateway:
        for host in ("box.lan", "[::1]:8000", "10.1.2.3:80"):
            assert get(gateway, "/healthz", host=host).status_code == 200
        assert get(gateway, "/healthz", host="other.lan").status_code == 400
    with running(create_app("forefront", allowed_hosts=["*"])) as gateway:
        assert get(gateway, "/healthz", host="anything.example").status_code == 200


def test_with_a_key_any_host_is_served_but_the_key_is_needed(server: ThreadedServer) -> None:
    with running(create_app("forefront", api_key="k")) as gateway:
        foreign = {"host": "gateway.example.com"}
        assert get(gateway, "/v1/models", **foreign).status_code == 401
        assert get(gateway, "/v1/models", **foreign, authorization="Bearer k").status_code == 200


def test_no_cross_origin_access_by_default(keyless: ThreadedServer) -> None:
    origin = {"origin": "https://app.example"}
    reply = get(keyless, "/v1/models", **origin)
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers
    preflight = httpx.options(
        keyless.url("/v1/chat/completions"),
        headers={**origin, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_named_origins_may_call_from_a_browser(server: ThreadedServer) -> None:
    app = create_app(
        "forefront", api_key="k", cors_origins=["https://app.example"],
        options={"base_url": server.url("/free-chat")},
    )  # fmt: skip
    with running(app) as gateway:
        preflight = httpx.options(
            gateway.url("/v1/chat/completions"),
            headers={
                "origin": "https://app.example",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        reply = httpx.post(
            gateway.url("/v1/chat/completions"),
            headers={"origin": "https://app.example", "authorization": "Bearer k"},
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.headers["access-control-allow-origin"] == "https://app.example"
        assert reply.json()["choices"][0]["message"]["content"] == "Hello, world!"
        other = get(gateway, "/v1/models", origin="https://evil.example", authorization="Bearer k")
        assert "access-control-allow-origin" not in other.headers
