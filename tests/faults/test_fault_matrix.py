"""Every fault, through every entry point: the library, the command and the gateway.

For each fault the server misbehaves in one way; through each entry point we
check the error a user sees, that the text already received is kept, that the
conversation log marks the exchange, and that nothing is left open afterwards
(connections on the faulty server, threads in this process, asyncio tasks in
the async library and on the gateway's event loop). Retries are off
(``max_retries=0``) so that each fault is seen once; the read timeout is short
so that the stalls end quickly.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import chatwire
from chatwire.server import create_app
from chatwire.store import Store
from tests.servers import ThreadedServer, refused_url, running

USER = [{"role": "user", "content": "hi"}]
CHATWIRE = str(Path(sys.executable).parent / "chatwire")
OPTIONS = {"read_timeout": 0.5, "max_retries": 0}


@dataclass(frozen=True)
class Fault:
    path: str  # on the scripted server; "" for a refused port
    error: type[chatwire.ChatwireError] | None  # None: the exchange completes
    partial: str  # text received before the fault
    says: str  # part of the error message a user reads

    @property
    def status(self) -> str:
        if self.error is None:
            return "complete"
        return "interrupted" if self.partial else "error"


FAULTS = {
    "refused": Fault("", chatwire.ProviderUnreachable, "", "cannot connect"),
    "never-answers": Fault("/stall-headers", chatwire.ProviderTimeout, "", "read timeout"),
    "stalls-after-headers": Fault(
        "/stall-body", chatwire.StreamInterrupted, "first words", "stalled"
    ),
    "drops-mid-stream": Fault("/drop", chatwire.StreamInterrupted, "partial answer", "lost"),
    "invalid-utf8": Fault("/bad-utf8", chatwire.ProtocolError, "fine ", "not valid UTF-8"),
    "10-MB-line": Fault("/huge-line", chatwire.ProtocolError, "fine ", "larger than"),
    "non-JSON-data": Fault("/garbage", chatwire.ProtocolError, "fine ", "not JSON"),
    "JSON-without-delta": Fault("/no-delta", None, "", ""),
    "429-retry-after": Fault("/rate-limited", chatwire.ProviderHTTPError, "", "HTTP 429"),
    "500": Fault("/error-500", chatwire.ProviderHTTPError, "", "the model fell over"),
    "401": Fault("/unauthorized", chatwire.ProviderHTTPError, "", "bad key"),
    "trickles-bytes": Fault("/trickle", chatwire.ProviderTimeout, "", "read timeout"),
}
faults = pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())


def url_for(fault: Fault, server: ThreadedServer) -> str:
    return server.url(fault.path) if fault.path else refused_url()


def assert_nothing_left(server: ThreadedServer, threads_before: int) -> None:
    assert server.wait_for_connections(0) == 0
    assert threading.active_count() <= threads_before


@faults
def test_library(fault: Fault, server: ThreadedServer, tmp_path: Path) -> None:
    threads = threading.active_count()
    store = Store(tmp_path / "log.db")
    stream = chatwire.ChatCompletion.create(
        messages=USER, provider="forefront", stream=True, base_url=url_for(fault, server),
        store=store, **OPTIONS,
    )  # fmt: skip
    if fault.error is None:
        assert "".join(stream) == fault.partial
    else:
        with pytest.raises(fault.error) as caught:
            list(stream)
        assert caught.value.partial == fault.partial == stream.text
        assert fault.says in str(caught.value)
    (exchange,) = store.recent()
    assert (exchange.status, exchange.response) == (fault.status, fault.partial)
    assert_nothing_left(server, threads)


@faults
def test_async_library(fault: Fault, server: ThreadedServer, tmp_path: Path) -> None:
    threads = threading.active_count()
    store = Store(tmp_path / "log.db")

    async def ask() -> tuple[str, BaseException | None, int]:
        stream = await chatwire.ChatCompletion.acreate(
            messages=USER, provider="forefront", stream=True, base_url=url_for(fault, server),
            store=store, **OPTIONS,
        )  # fmt: skip
        failure: BaseException | None = None
        try:
            async for _ in stream:
                pass
        except chatwire.ChatwireError as exc:
            failure = exc
        await asyncio.sleep(0)  # let anything the stream scheduled run out
        return stream.text, failure, len(asyncio.all_tasks())

    text, failure, tasks = asyncio.run(ask())
    assert text == fault.partial
    if fault.error is None:
        assert failure is None
    else:
        assert isinstance(failure, fault.error)
        assert failure.partial == fault.partial
        assert fault.says in str(failure)
    assert tasks == 1  # only the one running ask()
    (exchange,) = store.recent()
    assert (exchange.status, exchange.response) == (fault.status, fault.partial)
    assert_nothing_left(server, threads)


@faults
def test_command(fault: Fault, server: ThreadedServer, tmp_path: Path) -> None:
    result = subprocess.run(
        [CHATWIRE, "-p", "forefront", "-o", f"base_url={url_for(fault, server)}",
         *(arg for key, value in OPTIONS.items() for arg in ("-o", f"{key}={value}")), "hi"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "CHATWIRE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.stdout == fault.partial + ("\n" if fault.partial or fault.error is None else "")
    if fault.error is None:
        assert result.returncode == 0
    else:
        assert result.returncode == 1
        assert result.stderr.startswith("chatwire: error: ")
        assert result.stderr.count("\n") == 1
        assert fault.says in result.stderr
    (exchange,) = Store(tmp_path / "logs.db").recent()
    assert (exchange.status, exchange.response) == (fault.status, fault.partial)
    assert server.wait_for_connections(0) == 0


@faults
def test_gateway(fault: Fault, server: ThreadedServer, tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    app = create_app(
        "forefront", store=store, options={"base_url": url_for(fault, server), **OPTIONS}
    )
    with running(app) as gateway:
        idle_tasks = gateway.task_count()
        reply = httpx.post(
            gateway.url("/v1/chat/completions"), json={"messages": USER, "stream": True},
            timeout=60,
        )  # fmt: skip
        assert gateway.wait_for_tasks(idle_tasks) == idle_tasks
    if fault.error is not None and not fault.partial:
        assert reply.status_code == 502  # failed before the first token
        assert fault.says in reply.json()["error"]["message"]
    else:
        assert reply.status_code == 200
        events = [json.loads(line[6:]) for line in reply.text.split("\n\n")
                  if line.startswith("data: ") and line != "data: [DONE]"]  # fmt: skip
        text = "".join(
            e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")
        )
        assert text == fault.partial
        if fault.error is not None:
            assert fault.says in events[-1]["error"]["message"]
            assert "[DONE]" not in reply.text
    assert "Traceback" not in reply.text
    (exchange,) = store.recent()
    assert (exchange.status, exchange.response) == (fault.status, fault.partial)
    assert server.wait_for_connections(0) == 0
