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

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

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


def test_document_carries_this_servers_models_and_limits(gateway: str) -> None:
    import requests

    document = requests.get(gateway + "/openapi.json", timeout=10).json()
    request = document["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    # The OpenAI provider takes temperature 0..2 and any model name.
    assert (request["temperature"]["minimum"], request["temperature"]["maximum"]) == (0, 2)
    assert "enum" not in request["model"]
    assert document["security"] == [{"bearer": []}]
    with running(create_app("local")) as local:
        document = requests.get(local.url("/openapi.json"), timeout=10).json()
    request = document["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert request["temperature"]["maximum"] == 5
    assert "local/smollm2-135m-instruct" in request["model"]["enum"]
    assert "security" not in document
