"""The API routes of the gateway: chat completions, free-chat, models, health, schema."""

from __future__ import annotations

__all__ = ["api_routes", "close_stream", "unless_client_leaves", "upstream_failed"]

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .._errors import AllProvidersFailed, ProviderError
from .._models import ChatRequest
from .._stream import AsyncStream
from ._documents import ChatCompletion, FreeChatRequest, Health, ModelList, Operation, documented
from ._event_stream import EventStream
from ._openapi import openapi_document
from ._wire import (
    CONVERSATION_HEADER,
    ApiError,
    ChunkEncoder,
    completion_object,
    free_chat_event,
    parse_chat_request,
    parse_free_chat_request,
)

if TYPE_CHECKING:
    from ._app import Gateway

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_T = TypeVar("_T")


async def unless_client_leaves(request: Request, work: Awaitable[_T]) -> _T:
    """``work``'s result, unless the client disconnects first: then it is cancelled.

    The body has been read by now, so the next message the server has for
    this request is its disconnect.
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(request.receive())
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        left = not task.done()
        if left:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if left:  # nobody will read this answer; the status is for the server's own log
        raise ApiError(499, "the client closed the request", code="client_closed_request")
    return task.result()


def upstream_failed(exc: ProviderError | AllProvidersFailed) -> ApiError:
    # AllProvidersFailed's own text names every provider tried and its error.
    message = exc.message if isinstance(exc, ProviderError) else str(exc)
    return ApiError(502, message, type="upstream_error", code="upstream_failed")


async def close_stream(stream: AsyncStream) -> None:
    # Closing must finish even when the task was cancelled by a disconnect.
    with anyio.CancelScope(shield=True):
        await stream.aclose()


def _finish_reason(stream: AsyncStream) -> str:
    return str(stream.meta.get("finish_reason") or "stop")


def _usage(stream: AsyncStream, pieces: int) -> dict[str, Any]:
    usage = stream.meta.get("usage")
    if isinstance(usage, dict):
        return usage
    # The provider did not count: report the pieces of text as completion tokens.
    return {"prompt_tokens": 0, "completion_tokens": pieces, "total_tokens": pieces}


async def _chat_events(
    stream: AsyncStream, first: Any, encoder: ChunkEncoder, include_usage: bool
) -> AsyncIterator[bytes]:
    # Chunks that go out together are joined: one write (and one packet) each.
    pieces = 0
    try:
        head = encoder.role()
        if first is not None:
            pieces += 1
            head += encoder.content(first) if first.__class__ is str else encoder.tool_call(first)
        yield head
        while True:
            try:
                piece = await stream.anext_event()
            except StopAsyncIteration:
                break
            pieces += 1
            # Text as a content chunk; anything else is a tool-call delta.
            yield encoder.content(piece) if piece.__class__ is str else encoder.tool_call(piece)
        tail = encoder.finish(_finish_reason(stream))
        if include_usage:
            tail += encoder.usage(_usage(stream, pieces))
        yield tail + ChunkEncoder.DONE
    except ProviderError as exc:
        yield ChunkEncoder.error(exc.message)
    finally:
        await close_stream(stream)


async def _free_chat_events(stream: AsyncStream, first: Any) -> AsyncIterator[bytes]:
    try:
        if first.__class__ is str:  # the protocol carries text only
            yield free_chat_event(first)
        async for piece in stream:
            yield free_chat_event(piece)
    except ProviderError as exc:
        yield ChunkEncoder.error(exc.message)
    finally:
        await close_stream(stream)


def api_routes(gateway: Gateway) -> list[BaseRoute]:
    @documented(
        Operation(
            "OpenAI chat completions, streamed or whole",
            body=ChatRequest, answer=ChatCompletion, events="chat.completion.chunk events",
            errors=(400, 404, 413, 429, 502), conversation=True,
        )
    )  # fmt: skip
    async def chat_completions(request: Request) -> Response:
        gateway.authorize(request)
        chat = parse_chat_request(await gateway.read_body(request))
        cid = gateway.conversation_id(request)
        stream, first = await gateway.open(request, chat, cid)
        # The id the log used (the request's, or a new one), for the next turn.
        logged = stream.conversation_id
        headers = {CONVERSATION_HEADER: logged} if logged else {}
        name = f"{stream.provider}/{stream.model}"
        if chat.stream:
            events = _chat_events(stream, first, ChunkEncoder(name), chat.include_usage)
            return EventStream(
                events, headers={**_SSE_HEADERS, **headers}, on_close=gateway.release
            )
        pieces = 0 if first is None else 1

        async def rest() -> int:
            # The stream keeps the text and the tool calls.
            count = 0
            while True:
                try:
                    await stream.anext_event()
                except StopAsyncIteration:
                    return count
                count += 1

        try:
            pieces += await unless_client_leaves(request, rest())
        except ProviderError as exc:
            raise upstream_failed(exc) from None
        finally:
            await close_stream(stream)
            gateway.release()
        body = completion_object(
            name, stream.text, _finish_reason(stream), _usage(stream, pieces), stream.tool_calls
        )
        return JSONResponse(body, headers=headers)

    @documented(
        Operation(
            "The Forefront free-chat protocol",
            body=FreeChatRequest, events='data: {"delta": ...} events',
            errors=(400, 413, 429, 502), conversation=True,
        )
    )  # fmt: skip
    async def free_chat(request: Request) -> Response:
        gateway.authorize(request)
        chat = parse_free_chat_request(await gateway.read_body(request))
        cid = gateway.conversation_id(request)
        stream, first = await gateway.open(request, chat, cid)
        events = _free_chat_events(stream, first)
        return EventStream(events, headers=_SSE_HEADERS, on_close=gateway.release)

    @documented(Operation("The models this server serves, as provider/model ids", answer=ModelList))
    async def models(request: Request) -> Response:
        gateway.authorize(request)
        data = [
            {"id": f"{name}/{model}", "object": "model", "created": 0, "owned_by": name}
            for name, provider in gateway.providers.items()
            for model in provider.models
        ]
        return JSONResponse({"object": "list", "data": data})

    @documented(Operation("Liveness; needs no key", answer=Health, public=True))
    async def healthz(request: Request) -> Response:
        store = gateway.store
        return JSONResponse({"status": "ok", "log": None if store is None else store.health()})

    document: dict[str, Any] = {}

    async def openapi(request: Request) -> Response:
        # Public like /healthz: it describes the API, it holds nothing secret.
        if not document:  # written once, from the application's whole route table
            document.update(openapi_document(gateway, request.app.routes))
        return JSONResponse(document)

    return [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/free-chat", free_chat, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
