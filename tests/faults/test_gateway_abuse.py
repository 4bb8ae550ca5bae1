"""The gateway under abuse: slow uploads, mass disconnects."""

from __future__ import annotations

import socket
import time

import httpx

from chatwire.server import create_app
from tests.servers import ScriptedServer, ThreadedServer, running

QUESTION = [{"role": "user", "content": "hi"}]


def test_a_slow_upload_does_not_block_other_clients(server: ThreadedServer) -> None:
    app = create_app("forefront", options={"base_url": server.url("/free-chat")})
    with running(app) as gateway:
        body = b'{"messages": [{"role": "user", "content": "slowly"}]}'
        slow = socket.create_connection(("127.0.0.1", gateway.port))
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        for byte in body[:-1]:  # a byte at a time, and the last one held back
            slow.sendall(bytes([byte]))
        try:
            # While the slow client's upload is unfinished, others are answered in full.
            for _ in range(5):
                reply = httpx.post(gateway.url("/v1/chat/completions"), json={"messages": QUESTION})
                assert reply.json()["choices"][0]["message"]["content"] == "Hello, world!"
            slow.sendall(body[-1:])
            answer = b""
            while b"Hello, world!" not in answer and (chunk := slow.recv(65536)):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            assert b"Hello, world!" in answer
        finally:
            slow.close()


def test_many_disconnecting_clients_leave_no_upstream_work(
    server: ThreadedServer, server_app: ScriptedServer
) -> None:
    assert server.wait_for_connections(0) == 0
    disconnects = server_app.disconnects
    app = create_app("forefront", options={"base_url": server.url("/endless")})
    clients = 100
    with running(app) as gateway:
        body = b'{"messages": [{"role": "user", "content": "go"}], "stream": true}'
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        sockets = []
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", gateway.port))
            sock.sendall(request)
            sockets.append(sock)
        for sock in sockets:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert server.open_connections == clients
        for sock in sockets:
            sock.close()  # every client leaves mid-stream
        assert server.wait_for_connections(0, within=30) == 0
        deadline = time.monotonic() + 30
        while server_app.disconnects < disconnects + clients and time.monotonic() < deadline:
            time.sleep(0.05)
    assert server_app.disconnects == disconnects + clients
