"""The gateway: any chatwire provider behind the OpenAI API and the free-chat protocol.

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /free-chat``,
``GET /healthz``, ``GET /openapi.json``, the conversation log read-only under
``/v1/conversations``, and the chat page at ``/``. Every answer waits for its
first piece of text before it commits to a status code, so a provider that
fails up front is a 502 with its message; a failure after that is an error
event at the end of the stream. A client that goes away cancels the stream,
which closes the upstream connection or stops local generation.

Safe by default: with no API key, only requests addressed to a loopback name
(or the names the server is told it answers to) are served, so a web page in
the user's browser cannot reach the gateway through DNS rebinding; and no
cross-origin browser access unless origins are named.
"""

from __future__ import annotations

__all__ = ["Gateway", "create_app"]

import asyncio
import contextlib
import hmac
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import providers
from .._client import Client
from .._errors import AllProvidersFailed, ContextLengthExceeded, InvalidRequest, ProviderError
from .._stream import AsyncStream

if TYPE_CHECKING:
    from .._models import ChatRequest
    from ..providers import Provider
    from ..store import Store
from ._pages import log_routes, page_routes
from ._routes import api_routes, close_stream, unless_client_leaves, upstream_failed
from ._wire import (
    CONVERSATION_HEADER,
    CONVERSATION_ID_PATTERN,
    ApiError,
    bad_request,
)

LOG_FLUSH_AT_EXIT_SECONDS = 10.0  # how long a stopping gateway waits for its log

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_CONCURRENT = 1024
_CONVERSATION_ID = re.compile(CONVERSATION_ID_PATTERN)
# Looked up in the raw headers: Starlette's mapping costs every logged answer three calls.
_CONVERSATION_HEADER_NAME = CONVERSATION_HEADER.lower().encode("latin-1")
API_KEY_ENV = "CHATWIRE_API_KEY"
# The names a keyless server answers to, whatever address it is bound to.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


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
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> None:
        names = [provider] if isinstance(provider, str) else list(provider)
        names = [name.strip() for entry in names for name in entry.split(",") if name.strip()]
        if not names:
            raise InvalidRequest("the gateway needs at least one provider")
        self.providers: dict[str, Provider] = {name: providers.get(name) for name in names}
        self.default = names[0]
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.max_body = max_body
        self.options = dict(options or {})
        self._options_for: dict[tuple[str, ...], dict[str, Any]] = {}
        self.store = store
        self.max_concurrent = max_concurrent
        self.active = 0  # requests being answered; the event loop is the only writer
        # Its connection pools, for the life of the server; closed when it stops.
        self.client = Client()

    def route(self, model: str | None) -> tuple[list[Provider], str | None]:
        """``provider/model``, a provider's name, a listed model, else the default.

        A request that names no model may be answered by any served provider,
        tried in the order given to the server (fallback).
        """
        if not model:
            return list(self.providers.values()), None
        target, chosen = self._route_named(model)
        return [target], chosen

    def _route_named(self, model: str) -> tuple[Provider, str | None]:
        name, slash, rest = model.partition("/")
        if slash and name in self.providers:
            return self.providers[name], rest or None
        if model in self.providers:
            return self.providers[model], None
        for provider in self.providers.values():
            if model in provider.models:
                return provider, model
        default = self.providers[self.default]
        if default.accepts_any_model:
            return default, model
        raise ApiError(
            404,
            f"model {model!r} does not exist here; GET /v1/models lists the models",
            param="model",
            code="model_not_found",
        )

    def options_for(self, targets: list[Provider]) -> dict[str, Any]:
        """The server's options that ``targets`` accept, and chatwire's own.

        Worked out once per set of targets (all providers, or one), not per request.
        """
        key = tuple(provider.name for provider in targets)
        found = self._options_for.get(key)
        if found is None:
            accepted = {name for provider in targets for name in provider.options}
            accepted.add("max_retries")
            found = {name: value for name, value in self.options.items() if name in accepted}
            self._options_for[key] = found
        return found

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
        """The conversation a request names, when logging (``None``: the log starts one)."""
        if self.store is None:
            return None
        given: str | None = None
        for name, value in request.scope["headers"]:  # lowercase names, as ASGI gives them
            if name == _CONVERSATION_HEADER_NAME:
                given = value.decode("latin-1")
                break
        if given is None:
            return None
        if not _CONVERSATION_ID.fullmatch(given):
            raise ApiError(400, f"{CONVERSATION_HEADER} must be 1-64 letters, digits, - or _")
        return given

    def admit(self) -> None:
        """Count a request in, or refuse it at once when the server is full."""
        if self.active >= self.max_concurrent:
            raise ApiError(
                429, f"the server is at its limit of {self.max_concurrent} concurrent requests",
                type="rate_limit_error", code="too_many_requests",
            )  # fmt: skip
        self.active += 1

    def release(self) -> None:
        self.active -= 1

    async def open(
        self,
        request: Request,
        chat: ChatRequest,
        conversation_id: str | None = None,
    ) -> tuple[AsyncStream, Any]:
        """Start an answer and wait for its first piece, text or tool call (``None``: none).

        ``chat.model`` picks the providers (``route``). The request takes one
        of the server's places (or gets its 429 here); the caller gives it back
        with ``release`` once the answer has ended. A client that leaves before
        the first piece stops the work at once.
        """
        targets, model = self.route(chat.model)
        if model != chat.model:
            chat = chat.replace(model=model)
        self.admit()
        try:
            stream = self.client.open_async(
                targets, chat,
                {**self.options_for(targets), "store": self.store,
                 "conversation_id": conversation_id},
            )  # fmt: skip
        except InvalidRequest as exc:
            self.release()
            raise bad_request(exc) from None
        try:
            return stream, await unless_client_leaves(request, stream.anext_event())
        except StopAsyncIteration:
            return stream, None
        except BaseException as exc:
            await close_stream(stream)
            self.release()
            if isinstance(exc, (ProviderError, AllProvidersFailed)):
                raise upstream_failed(exc) from None
            if isinstance(exc, ContextLengthExceeded):
                raise ApiError(
                    400, str(exc), param="messages", code="context_length_exceeded"
                ) from None
            if isinstance(exc, InvalidRequest):  # found by the provider as it began
                raise bad_request(exc) from None
            raise


def create_app(
    provider: str | Sequence[str] = providers.DEFAULT,
    *,
    api_key: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    options: Mapping[str, object] | None = None,
    store: Store | None = None,
    max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    allowed_hosts: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
) -> Starlette:
    """The gateway as an ASGI application; with a ``store`` it logs every exchange.

    ``provider`` may name several providers: a request that names no model is
    answered by the first that works (fallback). Beyond ``max_concurrent``
    requests in progress, new ones get a 429 at once.

    Without an API key, a request whose ``Host`` is not ``localhost``,
    ``127.0.0.1``, ``[::1]`` or one of ``allowed_hosts`` gets a 400 (``"*"``
    allows any). ``cors_origins`` lists the web origins a browser may call the
    API from; none by default.
    """
    gateway = Gateway(
        provider, api_key=api_key, max_body=max_body, options=options, store=store,
        max_concurrent=max_concurrent,
    )  # fmt: skip

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = "method_not_allowed" if exc.status_code == 405 else "not_found"
        error = ApiError(exc.status_code, str(exc.detail), code=code)
        # Keep Starlette's headers: a 405 must say which methods are allowed.
        return JSONResponse(error.body(), status_code=exc.status_code, headers=exc.headers)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Never a traceback to the client; the server's own log has it.
        error = ApiError(500, "internal error in the chatwire gateway", type="server_error")
        return JSONResponse(error.body(), status_code=500)

    middleware = []
    if gateway.api_key is None and "*" not in allowed_hosts:
        hosts = [*LOOPBACK_HOSTS, *(_bracketed(host) for host in allowed_hosts)]
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", CONVERSATION_HEADER],
                expose_headers=[CONVERSATION_HEADER],
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = gateway.store
        if store is not None:
            # Beat and sweep from the start: other replicas' dead answers get marked,
            # and /healthz knows within seconds whether the log is reachable.
            store.writer.watch()
        yield
        await gateway.client.aclose()
        if store is not None:  # what this process logged is written before it goes
            store.writer.unwatch()
            await asyncio.to_thread(store.flush, LOG_FLUSH_AT_EXIT_SECONDS)

    app = Starlette(
        lifespan=lifespan,
        middleware=middleware,
        routes=[
            *api_routes(gateway),
            *log_routes(gateway),
            *page_routes(),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: unexpected},
    )
    app.state.gateway = gateway
    return app


def _bracketed(host: str) -> str:
    """An IPv6 address as it appears in a ``Host`` header."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
