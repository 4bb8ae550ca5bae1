"""``Client`` and ``ChatCompletion``: resolve, check once, dispatch.

A ``Client`` owns what many calls share: its connection pools (an httpx one
for sync calls, an aiohttp session per event loop for async ones, with the
CA bundle and proxies the environment named when it was made) and its
defaults (timeouts, retries, the log). ``ChatCompletion.create`` and
``acreate`` are the calls of a default client that lives as long as the
process. Both check everything they can (messages, model, options) before
any I/O. With ``stream=True`` they hand back a ``Stream`` / ``AsyncStream``
of text pieces that closes its connection on ``close()``/``aclose()``, on
leaving a ``with`` block, on ``break`` (once the stream is dropped) and on
task cancellation. With ``stream=False`` they return the whole text.
"""

from __future__ import annotations

__all__ = ["ChatCompletion", "Client"]

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from . import providers
from ._errors import InvalidRequest
from ._fallback import DEFAULT_MAX_RETRIES, AsyncFallbackReply, FallbackReply, Plan, make_plans
from ._stream import AsyncStream, Completion, Stream
from ._validate import Option
from .providers._base import split_request

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType, TracebackType
    from typing import TypeAlias

    from ._models import ChatRequest
    from ._transport import Transport
    from .providers import Provider
    from .store import Recorder, Store

    # A provider, its name, several of either (tried in order), or None (the default).
    ProviderSpec: TypeAlias = (
        str | ModuleType | Provider | Sequence[str | ModuleType | Provider] | None
    )


@functools.cache
def _log_parts() -> tuple[type[Store], Callable[[], str], type[Recorder]]:
    # Imported on the first call that logs, not with chatwire; then kept, as an import
    # statement inside the function would run the import machinery on every answer.
    from .store import Recorder, Store, new_conversation_id

    return Store, new_conversation_id, Recorder


def _recorder(
    log: bool,
    store: Store | None,
    conversation_id: str | None,
    provider: str,
    model: str,
    messages: list[Any],
) -> tuple[Recorder | None, str | None]:
    """A recorder for this exchange when the caller asked for a log."""
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise InvalidRequest("conversation_id must be a string")
    if not log and store is None:
        return None, conversation_id
    Store, new_conversation_id, Recorder = _log_parts()
    if store is not None and not isinstance(store, Store):
        raise InvalidRequest(f"store must be a chatwire.store.Store, got {type(store).__name__}")
    cid = conversation_id or new_conversation_id()
    return Recorder(store or _default_store(), cid, provider, model, messages), cid


_stores: dict[str, Store] = {}


def _default_store() -> Store:
    # The log CHATWIRE_DATABASE_URL names, else the default file; one per location,
    # opened on the first answer that logs to it, not made again for every answer.
    from .store import DATABASE_URL_ENV, default_path, open_store

    named = os.environ.get(DATABASE_URL_ENV) or str(default_path())
    store = _stores.get(named)
    if store is None:
        store = _stores.setdefault(named, open_store(named))
    return store


_OWN_KEYWORDS = ("log", "store", "conversation_id", "max_retries")
_MAX_RETRIES = Option("max_retries", int, "a whole number", minimum=0)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate chatwire's own keywords (logging, retries) from the providers' options."""
    ours = {name: options.pop(name) for name in _OWN_KEYWORDS if name in options}
    retries = ours.get("max_retries")
    ours["max_retries"] = DEFAULT_MAX_RETRIES if retries is None else _MAX_RETRIES.coerce(retries)
    return ours, options


class Client:
    """Connection pools and defaults shared by many calls; ``close`` it (or use ``with``).

    ``timeout``, ``connect_timeout`` and ``read_timeout`` apply to every
    provider that takes them, unless a call says otherwise; so do
    ``max_retries`` and the log (``log=True``, or ``store=Store(...)``).
    The CA bundle (``SSL_CERT_FILE``) and proxies (``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``NO_PROXY``) are read from the environment now.
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        log: bool = False,
        store: Store | None = None,
    ) -> None:
        from ._transport import Transport

        self._transport: Transport | None = Transport()
        given = {"timeout": timeout, "connect_timeout": connect_timeout,
                 "read_timeout": read_timeout}  # fmt: skip
        self._defaults = {name: value for name, value in given.items() if value is not None}
        given_own = {"log": log, "store": store, "max_retries": max_retries}
        self._own = {name: value for name, value in given_own.items() if value is not None}
        self.closed = False

    @property
    def transport(self) -> Transport:
        if self.closed or self._transport is None:
            raise InvalidRequest("this chatwire.Client is closed")
        return self._transport

    def _keywords(self, keywords: dict[str, Any]) -> dict[str, Any]:
        return {**self._own, **keywords}

    def _prepared(
        self, targets: list[Provider], request: ChatRequest, keywords: dict[str, Any]
    ) -> tuple[list[Plan], dict[str, Any], Recorder | None, str | None]:
        ours, options = _split(self._keywords(keywords))
        plans = make_plans(targets, request, options, self._defaults, self.transport)
        first = plans[0]
        recorder, cid = _recorder(
            bool(ours.get("log")), ours.get("store"), ours.get("conversation_id"),
            first.name, first.model, request.as_sent()["messages"],
        )  # fmt: skip
        return plans, ours, recorder, cid

    def open_sync(
        self, targets: list[Provider], request: ChatRequest, keywords: dict[str, Any]
    ) -> Stream:
        """A stream of the answer to a typed request from the first of ``targets`` that answers.

        ``keywords`` are the providers' options and chatwire's own (``log``,
        ``store``, ``conversation_id``, ``max_retries``).
        """
        plans, ours, recorder, cid = self._prepared(targets, request, keywords)
        reply = FallbackReply(plans, ours["max_retries"])
        return Stream(reply, reply.provider, reply.model, recorder, cid)

    def open_async(
        self, targets: list[Provider], request: ChatRequest, keywords: dict[str, Any]
    ) -> AsyncStream:
        """The async twin of ``open_sync``."""
        plans, ours, recorder, cid = self._prepared(targets, request, keywords)
        reply = AsyncFallbackReply(plans, ours["max_retries"])
        return AsyncStream(reply, reply.provider, reply.model, recorder, cid)

    @overload
    def create(
        self,
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> str: ...

    @overload
    def create(
        self,
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> Stream: ...

    @overload
    def create(
        self,
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        *,
        stream: bool,
        **kwargs: Any,
    ) -> str | Stream: ...

    def create(
        self,
        model: str | None = None,
        messages: list[Any] | None = None,
        provider: ProviderSpec = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | Stream:
        """Ask ``provider`` (default: the registry's default) for a completion.

        Returns the whole text (a ``Completion``: a ``str`` that also carries
        ``tool_calls``, ``finish_reason`` and ``usage``), or with ``stream=True``
        a ``Stream`` of pieces. Keywords named like fields of the chat request
        (``temperature``, ``tools``, ...) join the typed request; the others
        are options of the provider. What the provider cannot serve raises
        ``InvalidRequest`` here, before any I/O. ``provider`` may list several
        providers (``["a", "b"]`` or ``"a,b"``) to fall back on in order;
        ``max_retries`` (default 2) bounds retries of transient failures
        before the first piece. ``log=True`` (or ``store=Store(...)``) writes
        the exchange to the conversation log, under ``conversation_id``.
        """
        request, keywords = split_request(model, messages, stream, kwargs)
        opened = self.open_sync(providers.resolve_all(provider), request, keywords)
        if stream:
            return opened
        with opened:
            for _ in opened:  # the stream keeps the text
                pass
            return Completion.of(opened)

    @overload
    async def acreate(
        self,
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        stream: Literal[False] = ...,
        **kwargs: Any,
    ) -> str: ...

    @overload
    async def acreate(
        self,
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        *,
        stream: Literal[True],
        **kwargs: Any,
    ) -> AsyncStream: ...

    @overload
    async def acreate(
        self,
        model: str | None = ...,
        messages: list[Any] | None = ...,
        provider: ProviderSpec = ...,
        *,
        stream: bool,
        **kwargs: Any,
    ) -> str | AsyncStream: ...

    async def acreate(
        self,
        model: str | None = None,
        messages: list[Any] | None = None,
        provider: ProviderSpec = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> str | AsyncStream:
        """The async twin of ``create``: ``await`` it for the text or the stream."""
        request, keywords = split_request(model, messages, stream, kwargs)
        opened = self.open_async(providers.resolve_all(provider), request, keywords)
        if stream:
            return opened
        async with opened:
            async for _ in opened:  # the stream keeps the text
                pass
            return Completion.of(opened)

    def close(self) -> None:
        """Close the connections this client keeps (its streams close on their own)."""
        if self._transport is not None:
            self._transport.close()
        self.closed = True

    async def aclose(self) -> None:
        """The async twin of ``close``: it also closes this event loop's session."""
        if self._transport is not None:
            await self._transport.aclose()
        self.closed = True

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class _DefaultClient(Client):
    """The process's client: the shared transport, made on first use, never closed."""

    def __init__(self) -> None:
        self._defaults = {}
        self._own = {}
        self._transport = None
        self.closed = False

    @property
    def transport(self) -> Transport:
        from ._transport import shared

        return shared()


_DEFAULT_CLIENT = _DefaultClient()


class ChatCompletion:
    """The unified entry point, in the shape of the seed's ecosystem: a default client's calls."""

    create = _DEFAULT_CLIENT.create
    acreate = _DEFAULT_CLIENT.acreate
