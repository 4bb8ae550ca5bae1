"""The gateway: any chatwire provider behind the OpenAI API and the free-chat protocol.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /free-chat``,
``GET /healthz``, the conversation log read-only under ``/v1/conversations``,
and the chat page at ``/``. Every answer waits for its first piece of text before
it commits to a status code, so a provider that fails up front is a 502 with
its message; a failure after that is an error event at the end of the
stream. A client that goes away cancels the stream, which closes the
upstream connection or stops local generation.
"""

from __future__ import annotations

__all__ = ["Gateway", "create_app"]

import hmac
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import providers
from .._client import ChatCompletion
from .._errors import InvalidRequest, ProviderError
from .._stream import AsyncStream
from ..providers._base import short_name

if TYPE_CHECKING:
    from ..store import Store
from ._event_stream import EventStream
from ._pages import log_routes, page_routes
from ._wire import (
    ApiError,
    ChunkEncoder,
    completion_object,
    free_chat_event,
    parse_chat_request,
    parse_free_chat_request,
)

DEFAULT_MAX_BODY = 1 << 20
CONVERSATION_HEADER = "X-Chatwire-Conversation"
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
API_KEY_ENV = "CHATWIRE_API_KEY"
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Gateway:
    """The providers a server offers, and how a request picks one."""

    def __init__(
        self,
        provider: str | Sequence[str] = providers.DEFAULT,
        *,
        api_key: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        options: Mapping[str, object] | None = None,
        store: Store | None = None,
    ) -> None:
        names = [provider] if isinstance(provider, str) else list(provider)
        names = [name.strip() for entry in names for name in entry.split(",") if name.strip()]
        if not names:
            raise InvalidRequest("the gateway needs at least one provider")
        self.modules: dict[str, ModuleType] = {name: providers.get(name) for name in names}
        self.default = names[0]
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.max_body = max_body
        self.options = dict(options or {})
        self.store = store

    def route(self, model: str | None) -> tuple[ModuleType, str | None]:
        """``provider/model``, a provider's name, a listed model, else the default."""
        if not model:
            return self.modules[self.default], None
        name, slash, rest = model.partition("/")
        if slash and name in self.modules:
            return self.modules[name], rest or None
        if model in self.modules:
            return self.modules[model], None
        for module in self.modules.values():
            if model in module.model:
                return module, model
        default = self.modules[self.default]
        if getattr(default, "accepts_any_model", False):
            return default, model
        raise ApiError(
            404,
            f"model {model!r} does not exist here; GET /v1/models lists the models",
            param="model",
            code="model_not_found",
        )

    def options_for(self, module: ModuleType, requested: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side options, then the request's sampling keywords the provider takes."""
        accepted = getattr(module, "options", {})
        merged = {k: v for k, v in self.options.items() if k in accepted}
        merged.update({k: v for k, v in requested.items() if k in accepted})
        return merged

    def authorize(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.api_key}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(
                401, "missing or wrong API key (Authorization: Bearer ...)",
                type="authentication_error", code="invalid_api_key",
            )  # fmt: skip

    async def read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise self._too_large()
        return bytes(body)

    def _too_large(self) -> ApiError:
        return ApiError(413, f"request body larger than {self.max_body} bytes")

    def conversation_id(self, request: Request) -> str | None:
        """The conversation a request belongs to (its header, or a new one) when logging."""
        if self.store is None:
            return None
        given = request.headers.get(CONVERSATION_HEADER)
        if given is None:
            from ..store import new_conversation_id

            return new_conversation_id()
        if not _CONVERSATION_ID.fullmatch(given):
            raise ApiError(400, f"{CONVERSATION_HEADER} must be 1-64 letters, digits, - or _")
        return given

    async def open(
        self,
        module: ModuleType,
        model: str | None,
        messages: list[Any],
        options: dict[str, Any],
        conversation_id: str | None = None,
    ) -> tuple[AsyncStream, str | None]:
        """Start an answer and wait for its first piece (``None``: empty answer)."""
        try:
            stream = await ChatCompletion.acreate(
                model, messages, module, stream=True, store=self.store,
                conversation_id=conversation_id, **options,
            )  # fmt: skip
        except InvalidRequest as exc:
            raise ApiError(400, str(exc)) from None
        try:
            return stream, await stream.__anext__()
        except StopAsyncIteration:
            return stream, None
        except ProviderError as exc:
            await _close(stream)
            raise ApiError(
                502, exc.message, type="upstream_error", code="upstream_failed"
            ) from None
        except BaseException:
            await _close(stream)
            raise


def _upstream_failed(exc: ProviderError) -> ApiError:
    return ApiError(502, exc.message, type="upstream_error", code="upstream_failed")


async def _close(stream: AsyncStream) -> None:
    # Closing must finish even when the task was cancelled by a disconnect.
    with anyio.CancelScope(shield=True):
        await stream.aclose()


def _usage(stream: AsyncStream, pieces: int) -> dict[str, Any]:
    usage = stream.meta.get("usage")
    if isinstance(usage, dict):
        return usage
    # The provider did not count: report the pieces of text as completion tokens.
    return {"prompt_tokens": 0, "completion_tokens": pieces, "total_tokens": pieces}


async def _chat_events(
    stream: AsyncStream, first: str | None, encoder: ChunkEncoder, include_usage: bool
) -> AsyncIterator[bytes]:
    pieces = 0
    try:
        yield encoder.role()
        if first is not None:
            pieces += 1
            yield encoder.content(first)
        async for piece in stream:
            pieces += 1
            yield encoder.content(piece)
        yield encoder.finish(str(stream.meta.get("finish_reason") or "stop"))
        if include_usage:
            yield encoder.usage(_usage(stream, pieces))
        yield ChunkEncoder.DONE
    except ProviderError as exc:
        yield ChunkEncoder.error(exc.message)
    finally:
        await _close(stream)


async def _free_chat_events(stream: AsyncStream, first: str | None) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield free_chat_event(first)
        async for piece in stream:
            yield free_chat_event(piece)
    except ProviderError as exc:
        yield ChunkEncoder.error(exc.message)
    finally:
        await _close(stream)


def create_app(
    provider: str | Sequence[str] = providers.DEFAULT,
    *,
    api_key: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    options: Mapping[str, object] | None = None,
    store: Store | None = None,
) -> Starlette:
    """The gateway as an ASGI application; with a ``store`` it logs every exchange."""
    gateway = Gateway(provider, api_key=api_key, max_body=max_body, options=options, store=store)

    async def chat_completions(request: Request) -> Response:
        gateway.authorize(request)
        chat = parse_chat_request(await gateway.read_body(request))
        module, model = gateway.route(chat.model)
        options = gateway.options_for(module, chat.options)
        cid = gateway.conversation_id(request)
        stream, first = await gateway.open(module, model, chat.messages, options, cid)
        name = f"{short_name(module.__name__)}/{stream.model}"
        headers = {CONVERSATION_HEADER: cid} if cid else {}
        if chat.stream:
            events = _chat_events(stream, first, ChunkEncoder(name), chat.include_usage)
            return EventStream(events, headers={**_SSE_HEADERS, **headers})
        pieces = [] if first is None else [first]
        try:
            pieces += [piece async for piece in stream]
        except ProviderError as exc:
            raise ApiError(
                502, exc.message, type="upstream_error", code="upstream_failed"
            ) from None
        finally:
            await _close(stream)
        finish = str(stream.meta.get("finish_reason") or "stop")
        body = completion_object(name, "".join(pieces), finish, _usage(stream, len(pieces)))
        return JSONResponse(body, headers=headers)

    async def free_chat(request: Request) -> Response:
        gateway.authorize(request)
        messages = parse_free_chat_request(await gateway.read_body(request))
        module = gateway.modules[gateway.default]
        options = gateway.options_for(module, {})
        cid = gateway.conversation_id(request)
        stream, first = await gateway.open(module, None, messages, options, cid)
        return EventStream(_free_chat_events(stream, first), headers=_SSE_HEADERS)

    async def models(request: Request) -> Response:
        gateway.authorize(request)
        data = [
            {"id": f"{name}/{model}", "object": "model", "created": 0, "owned_by": name}
            for name, module in gateway.modules.items()
            for model in module.model
        ]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        error = ApiError(exc.status_code, str(exc.detail), code="not_found")
        return JSONResponse(error.body(), status_code=exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never a traceback to the client; the server's own log has it.
        error = ApiError(500, "internal error in the chatwire gateway", type="server_error")
        return JSONResponse(error.body(), status_code=500)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/free-chat", free_chat, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *log_routes(gateway),
            *page_routes(),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: unexpected},
    )
    app.state.gateway = gateway
    return app
