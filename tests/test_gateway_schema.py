"""schemathesis against the gateway's own OpenAPI document, over real HTTP.

The gateway (OpenAI provider, API key, conversation log) runs on uvicorn in
front of a well-behaved OpenAI-compatible server on 127.0.0.1. Every
operation in ``/openapi.json`` gets a bounded number of generated requests,
valid and not; schemathesis checks that none gets a 5xx, that every answer
matches the document (status, content type, body), that valid requests are
accepted, that invalid ones are refused, and that the key is enforced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.routing import Route

from chatwire._models import UNSERVED_FIELDS, ChatRequest
from chatwire.server import create_app
from chatwire.store import Store

from .servers import ThreadedServer, running

KEY = "schema-key"


@pytest.fixture(scope="module")
def gateway(server: ThreadedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = Store(Path(tmp_path_factory.mktemp("schema")) / "log.db")
    upstream = {"base_url": server.url("/compatible/v1"), "api_key": "x", "max_retries": "0"}
    app = create_app("openai", api_key=KEY, options=upstream, store=store)
    with running(app) as served:
        yield served.url()


@pytest.fixture(scope="module")
def gateway_schema(gateway: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(gateway + "/openapi.json")


schema = schemathesis.pytest.from_fixture("gateway_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_gateway_keeps_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"})


def _number(schema: dict[str, Any]) -> dict[str, Any]:
    (number,) = (branch for branch in schema["anyOf"] if branch != {"type": "null"})
    return number


def test_document_carries_this_servers_models_and_limits(gateway: str) -> None:
    import requests

    document = requests.get(gateway + "/openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    request = document["components"]["schemas"]["ChatRequest"]["properties"]
    # The OpenAI provider serves every field of the typed request, temperature 0..2,
    # and any model name.
    assert set(request) == set(ChatRequest.__struct_fields__) - set(UNSERVED_FIELDS)
    assert (
        _number(request["temperature"])["minimum"],
        _number(request["temperature"])["maximum"],
    ) == (0, 2)
    assert "enum" not in str(request["model"])
    assert document["security"] == [{"bearer": []}]
    with running(create_app("local")) as local:
        document = requests.get(local.url("/openapi.json"), timeout=10).json()
    request = document["components"]["schemas"]["ChatRequest"]["properties"]
    assert _number(request["temperature"])["maximum"] == 5
    assert "local/smollm2-135m-instruct" in request["model"]["anyOf"][0]["enum"]
    assert "user" not in request  # the embedded model does not take it: the server refuses it
    assert "security" not in document
    with running(create_app("forefront")) as forefront:
        document = requests.get(forefront.url("/openapi.json"), timeout=10).json()
    request = document["components"]["schemas"]["ChatRequest"]["properties"]
    assert not {"tools", "tool_choice", "temperature"} & set(request)


def test_every_documented_route_is_in_the_document_and_nothing_else() -> None:
    app = create_app("local")
    documented = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and hasattr(route.endpoint, "openapi")
        for method in route.methods or ()
        if method != "HEAD"
    }
    with running(app) as served:
        document = httpx.get(served.url("/openapi.json"), timeout=10).json()
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    assert listed == documented
    assert ("/v1/chat/completions", "post") in listed
    assert ("/v1/conversations/{cid}", "get") in listed
