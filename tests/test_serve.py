"""``chatwire serve`` as a real subprocess: keys, defaults, and what it refuses."""

from __future__ import annotations

import resource
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.servers import ScriptedServer, ThreadedServer, free_port, serve, wait_until

CHATWIRE = shutil.which("chatwire") or "chatwire"
QUESTION = {"messages": [{"role": "user", "content": "hi"}]}


def refused(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHATWIRE, "serve", "--no-log", "--port", str(free_port()), *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "my-box.example"])
def test_a_network_address_without_a_key_is_refused(host: str) -> None:
    result = refused("--host", host)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("chatwire: error: refusing to serve")
    assert "--api-key" in result.stderr
    assert "CHATWIRE_API_KEY" in result.stderr


def test_allow_no_key_is_the_way_out(server: ThreadedServer) -> None:
    # Holding the port on loopback makes the wildcard bind fail: the command
    # gets past the refusal without ever listening on the network.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [CHATWIRE, "serve", "--no-log", "--host", "0.0.0.0", "--port", str(port),
             "--allow-no-key"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert "refusing" not in result.stderr
    assert "address already in use" in result.stderr.lower()


def test_api_key_from_the_option_the_environment_and_a_file(
    server: ThreadedServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    upstream = ["-p", "forefront", "-o", f"base_url={server.url('/free-chat')}"]
    ways = [
        (["--api-key", "from-the-option"], {}, "from-the-option"),
        ([], {"CHATWIRE_API_KEY": "from-the-environment"}, "from-the-environment"),
        (["--api-key-file", str(key_file)], {}, "from-a-file"),
    ]
    for args, env, key in ways:
        with serve(*upstream, *args, env=env) as gateway:
            chat = gateway.url("/v1/chat/completions")
            assert httpx.post(chat, json=QUESTION).status_code == 401
            wrong = httpx.post(chat, json=QUESTION, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            right = httpx.post(chat, json=QUESTION, headers={"Authorization": f"Bearer {key}"})
            assert right.json()["choices"][0]["message"]["content"] == "Hello, world!"
            # A keyed server answers any Host, and its key stays out of `ps`.
            assert httpx.get(gateway.url("/healthz"), headers={"host": "lb.example"}).is_success
            command_line = Path(f"/proc/{gateway.process.pid}/cmdline").read_bytes()
            assert (key.encode() in command_line) == (key == "from-the-option")


def test_an_empty_or_missing_key_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    for path in (tmp_path / "empty", tmp_path / "missing"):
        result = refused("--api-key-file", str(path))
        assert result.returncode == 2
        assert result.stderr.startswith("chatwire: error: ")
        assert str(path) in result.stderr
    both = refused("--api-key", "a", "--api-key-file", str(tmp_path / "empty"))
    assert both.returncode == 2
    assert "not both" in both.stderr


def test_default_body_limit_is_one_mebibyte(server: ThreadedServer) -> None:
    with serve("-p", "forefront", "-o", f"base_url={server.url('/free-chat')}") as gateway:
        chat = gateway.url("/v1/chat/completions")
        padding = "x" * ((1 << 20) - 200)
        fits = {"messages": [{"role": "user", "content": padding}]}
        assert httpx.post(chat, json=fits).status_code == 200
        over = {"messages": [{"role": "user", "content": padding + "y" * 400}]}
        reply = httpx.post(chat, json=over)
        assert reply.status_code == 413
        assert "1048576 bytes" in reply.json()["error"]["message"]


def test_default_concurrency_limit_is_1024(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    # 1024 requests wait on an upstream that never answers; the next is refused.
    limit = 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 3 * limit + 256  # our clients, and the upstream's side of each
    # Linux allows far more by default (1048576 in Debian); a machine that does
    # not cannot run the default limit's test, and says so rather than pass.
    assert hard == resource.RLIM_INFINITY or hard >= needed, (
        f"this test holds {needed} sockets open; the hard open-file limit is {hard}"
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    disconnects = server_app.disconnects
    args = ["-p", "forefront", "-o", f"base_url={server.url('/stall-headers')}"]
    # Only the clients leaving can end these requests: the read timeout is long.
    with serve(*args, "-o", "max_retries=0", "-o", "read_timeout=600") as gateway:
        body = b'{"messages": [{"role": "user", "content": "wait"}]}'
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        clients = []
        try:
            for _ in range(limit):
                client = socket.create_connection(("127.0.0.1", gateway.port))
                client.sendall(request)
                clients.append(client)
            assert server.wait_for_connections(limit, within=120) == limit
            one_more = httpx.post(gateway.url("/v1/chat/completions"), json=QUESTION, timeout=60)
            assert one_more.status_code == 429
            assert "1024 concurrent requests" in one_more.json()["error"]["message"]
        finally:
            for client in clients:
                client.close()
        # The clients left: the gateway gives up every upstream request.
        assert server.wait_for_connections(0, within=120) == 0
        assert wait_until(lambda: server_app.disconnects == disconnects + limit)
        assert httpx.get(gateway.url("/healthz")).status_code == 200
