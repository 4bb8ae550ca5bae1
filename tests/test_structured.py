"""response_format end to end: the embedded model's JSON, forwarding, refusals, --schema."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import chatwire
from chatwire import InvalidRequest
from chatwire.server import create_app
from tests.servers import ScriptedServer, ThreadedServer, running

CHATWIRE = shutil.which("chatwire") or "chatwire"
PICK = {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer"},
        "happy": {"type": "boolean"},
    },
    "required": ["colour", "count", "happy"],
}
PICK_FORMAT = {"type": "json_schema", "json_schema": {"name": "pick", "schema": PICK}}
QUESTION = [{"role": "user", "content": "Pick a colour and a number, and say if you are happy."}]


def fits(text: str) -> dict[str, Any]:
    """The answer, once checked against PICK."""
    answer = json.loads(text)
    assert isinstance(answer, dict)
    assert set(PICK["required"]) <= set(answer)
    assert answer["colour"] in ("red", "green", "blue")
    assert type(answer["count"]) is int
    assert type(answer["happy"]) is bool
    return answer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_embedded_model_answers_json_that_fits_the_schema(seed: int) -> None:
    # Sampled, not greedy: whatever the model picks, the grammar keeps it in the schema.
    whole = chatwire.ChatCompletion.create(
        messages=QUESTION, response_format=PICK_FORMAT, temperature=1.0, seed=seed
    )
    fits(whole)
    stream = chatwire.ChatCompletion.create(
        messages=QUESTION, response_format=PICK_FORMAT, temperature=1.0, seed=seed, stream=True
    )
    assert "".join(stream) == whole
    assert stream.meta["finish_reason"] == "stop"

    async def main() -> str:
        return await chatwire.ChatCompletion.acreate(
            messages=QUESTION, response_format=PICK_FORMAT, temperature=1.0, seed=seed
        )

    assert asyncio.run(main()) == whole


def test_json_object_constrains_the_answer_to_json() -> None:
    ask = [{"role": "user", "content": "Describe a cat."}]
    prose = chatwire.ChatCompletion.create(messages=ask, temperature=0, seed=7, max_tokens=8)
    assert not prose.lstrip().startswith("{")
    constrained = chatwire.ChatCompletion.create(
        messages=ask, temperature=0, seed=7, max_tokens=8,
        response_format={"type": "json_object"},
    )  # fmt: skip
    assert constrained.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("response_format", "says"),
    [
        ({"type": "xml"}, r"^response_format\.type: invalid value 'xml'"),
        ({"type": "json_schema"}, r"^response_format: object missing required field `json_schema`"),
        ({"type": "json_schema", "json_schema": {"name": "has space"}},
         r"^response_format\.json_schema\.name: expected `str` matching"),
        ('{"type": "json_object"}', r"^response_format: expected `object \| null`, got `str`"),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}},
         r"^response_format\.json_schema\.schema: the local provider cannot follow it"),
    ],
)  # fmt: skip
def test_a_bad_response_format_is_refused_before_generating(
    response_format: object, says: str
) -> None:
    with pytest.raises(InvalidRequest, match=says):
        chatwire.ChatCompletion.create(messages=QUESTION, response_format=response_format)


def test_forefront_refuses_a_response_format_before_any_io(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    with pytest.raises(
        InvalidRequest,
        match=r"^response_format: provider 'forefront' cannot give structured output",
    ):
        chatwire.ChatCompletion.create(
            messages=QUESTION, provider="forefront", base_url=server.url("/free-chat"),
            response_format=PICK_FORMAT,
        )  # fmt: skip
    assert server_app.requests == []


def test_the_openai_provider_forwards_the_fields_as_sent(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    fields = {
        "response_format": PICK_FORMAT, "presence_penalty": 0.5, "frequency_penalty": -1.0,
        "user": "user-7",
    }  # fmt: skip
    answer = chatwire.ChatCompletion.create(
        messages=QUESTION, provider="openai", model="m", base_url=server.url("/compatible/v1"),
        **fields,
    )  # fmt: skip
    assert answer == "Hello, world!"
    sent = server_app.requests[-1].json
    assert {name: sent[name] for name in fields} == fields


def test_the_openai_sdk_gets_schema_json_from_the_embedded_model(
    local_gateway: ThreadedServer,
) -> None:
    client = openai.OpenAI(base_url=local_gateway.url("/v1"), api_key="unused", max_retries=0)
    whole = client.chat.completions.create(
        model="local",
        messages=QUESTION,
        response_format=PICK_FORMAT,
        temperature=0,  # type: ignore[arg-type]
    )
    fits(whole.choices[0].message.content or "")
    stream = client.chat.completions.create(
        model="local", messages=QUESTION, response_format=PICK_FORMAT,  # type: ignore[arg-type]
        temperature=0, stream=True,
    )  # fmt: skip
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == whole.choices[0].message.content


@pytest.mark.parametrize(
    ("fields", "says", "param"),
    [
        ({"response_format": {"type": "json_object"}},
         "response_format: provider 'forefront' cannot give structured output", "response_format"),
        ({"temperature": 0.5}, "temperature: provider 'forefront' cannot serve it",
         "temperature"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]},
         "tools: provider 'forefront' cannot call tools", "tools"),
        ({"tool_choice": "auto"}, "tool_choice: provider 'forefront' cannot call tools",
         "tool_choice"),
        ({"functions": [{"name": "f"}]}, "functions: the deprecated functions API", "functions"),
        ({"n": 2}, "n: expected `int` <= 1", "n"),
    ],
)  # fmt: skip
def test_the_gateway_refuses_what_its_provider_cannot_serve(
    server: ThreadedServer, server_app: ScriptedServer, fields: dict[str, Any], says: str,
    param: str,
) -> None:  # fmt: skip
    app = create_app("forefront", options={"base_url": server.url("/free-chat")})
    with running(app) as gateway:
        reply = httpx.post(
            gateway.url("/v1/chat/completions"), json={"messages": QUESTION, **fields}
        )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert says in error["message"]
    assert error["param"] == param
    assert server_app.requests == []  # refused before anything went upstream


def test_the_command_prints_json_that_fits_the_schema(tmp_path: Path) -> None:
    schema_file = tmp_path / "pick.json"
    schema_file.write_text(json.dumps(PICK))
    env = {**os.environ, "CHATWIRE_HOME": str(tmp_path)}
    for schema in (str(schema_file), json.dumps(PICK)):
        result = subprocess.run(
            [CHATWIRE, "--schema", schema, "-o", "temperature=0", QUESTION[0]["content"]],
            capture_output=True, text=True, timeout=300, check=False, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        fits(result.stdout)
    bad = subprocess.run(
        [CHATWIRE, "--schema", "[1", "hi"], capture_output=True, text=True, timeout=60,
        check=False, env=env,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--schema is neither a readable file nor JSON" in bad.stderr
