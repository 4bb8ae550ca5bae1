"""The chat page at ``/`` and the read-only conversation log it reads.

The page is plain HTML, CSS and JavaScript shipped in the package: no build
step and nothing fetched from elsewhere, so it works with no network. The
log routes sit behind the same API key as the rest of the API.
"""

from __future__ import annotations

__all__ = ["log_routes", "page_routes"]

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ._documents import Conversation, ConversationList, Operation, documented
from ._wire import ApiError

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from ..store import Store
    from ._app import Gateway

STATIC = Path(__file__).resolve().parent / "static"
# The page may only run its own script and talk to this server.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def page_routes() -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    return [
        Route("/", index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def log_routes(gateway: Gateway) -> list[BaseRoute]:
    def authorized_store(request: Request) -> Store:
        gateway.authorize(request)
        if gateway.store is None:
            raise ApiError(404, "this server keeps no conversation log", code="log_disabled")
        return gateway.store

    @documented(
        Operation("The logged conversations, newest first", answer=ConversationList, errors=(404,))
    )
    async def conversations(request: Request) -> Response:
        store = authorized_store(request)
        data = await asyncio.to_thread(store.conversations)  # a database may take a while
        return JSONResponse({"object": "list", "data": data})

    @documented(Operation("One logged conversation", answer=Conversation, errors=(404,)))
    async def conversation(request: Request) -> Response:
        store = authorized_store(request)
        cid = request.path_params["cid"]
        exchanges = await asyncio.to_thread(store.conversation, cid)
        if not exchanges:
            raise ApiError(404, f"no conversation {cid!r}", code="not_found")
        return JSONResponse(
            {"id": cid, "exchanges": [exchange.to_json() for exchange in exchanges]}
        )

    return [
        Route("/v1/conversations", conversations, methods=["GET"]),
        Route("/v1/conversations/{cid}", conversation, methods=["GET"]),
    ]
