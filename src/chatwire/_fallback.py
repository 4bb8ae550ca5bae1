"""Retries and fallback: how one request finds a provider that answers.

A request names one provider or several (a list, or ``"a,b,c"``). Each is
tried in order until one yields its first piece of text. Before that first
piece, failures that may pass (no connection, a timeout, HTTP 408, 429 and
5xx) are retried with exponential backoff and jitter, honouring
``Retry-After``; other failures move on to the next provider at once. Once
text has been yielded the provider is never switched, so an answer is never
spliced from two sources: a later failure raises ``StreamInterrupted`` with
the text so far. When every provider fails, ``AllProvidersFailed`` names
each one and its error. Retries and fallbacks are logged at debug level on
the ``chatwire`` logger.
"""

from __future__ import annotations

__all__ = ["AsyncFallbackReply", "FallbackReply", "Plan", "RetryWait", "make_plans"]

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import (
    AllProvidersFailed,
    InvalidRequest,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    ProviderUnreachable,
    StreamInterrupted,
)

if TYPE_CHECKING:
    from ._models import ChatRequest
    from ._transport import Transport
    from .providers import Provider


def _debug(message: str, *args: object) -> None:
    # ``logging`` is imported only when there is something to say: it is slow to
    # import, and ``import chatwire`` is kept fast.
    import logging

    logging.getLogger("chatwire").debug(message, *args)


DEFAULT_MAX_RETRIES = 2
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 4.0
RETRY_AFTER_CAP_SECONDS = 20.0
_RETRIED_STATUSES = frozenset({408, 429})


class RetryWait:
    """How retries wait: real sleeps, unless a test swaps them for a recorder."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    @staticmethod
    async def asleep(seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


class Plan:
    """One provider, with the request checked against it: the model and options it takes."""

    __slots__ = ("model", "name", "options", "provider", "request", "transport")

    def __init__(
        self,
        provider: Provider,
        request: ChatRequest,
        model: str,
        options: dict[str, Any],
        transport: Transport | None = None,
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.request = request
        self.model = model
        self.options = options
        self.transport = transport


def make_plans(
    targets: list[Provider],
    request: ChatRequest,
    options: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    transport: Transport | None = None,
) -> list[Plan]:
    """Check the request against each provider, before any I/O.

    With one provider, what it cannot serve is an ``InvalidRequest``; with
    several, those that cannot are left out, and only when none can is it one.
    Each provider gets the options it accepts; an option none accepts is refused.
    ``defaults`` (a client's) go to the providers that accept them, under the
    options given.
    """

    def with_defaults(provider: Provider, given: Mapping[str, Any]) -> dict[str, Any]:
        taken = {k: v for k, v in (defaults or {}).items() if k in provider.options}
        return {**taken, **given}

    if len(targets) == 1:
        provider = targets[0]
        checked = provider.check(request, with_defaults(provider, options))
        return [Plan(provider, request, *checked, transport)]
    known = {name for provider in targets for name in provider.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidRequest(f"no provider in the list accepts option {unknown[0]!r}")
    plans: list[Plan] = []
    reasons: list[str] = []
    for provider in targets:
        if not provider.working:
            reasons.append(f"{provider.name}: marked not working")
            continue
        mine = {key: value for key, value in options.items() if key in provider.options}
        try:
            checked = provider.check(request, with_defaults(provider, mine))
            plans.append(Plan(provider, request, *checked, transport))
        except InvalidRequest as exc:
            reasons.append(f"{provider.name}: {exc}")
    if not plans:
        raise InvalidRequest("no provider in the list can take this request: " + "; ".join(reasons))
    return plans


def retry_delay(error: ProviderError, attempt: int, max_retries: int) -> float | None:
    """Seconds to wait before retrying after ``error``, or ``None``: do not retry."""
    if attempt >= max_retries:
        return None
    if isinstance(error, ProviderHTTPError):
        if error.status_code not in _RETRIED_STATUSES and error.status_code < 500:
            return None
        if error.retry_after is not None:
            return min(float(error.retry_after), RETRY_AFTER_CAP_SECONDS)
    elif isinstance(error, StreamInterrupted):
        if error.partial:
            return None
    elif not isinstance(error, (ProviderUnreachable, ProviderTimeout)):
        return None
    import random

    backoff: float = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0**attempt)
    return backoff * random.uniform(0.5, 1.5)


def _after_failure(
    plan: Plan,
    error: ProviderError,
    attempt: int,
    max_retries: int,
    errors: list[tuple[str, ProviderError]],
) -> float | None:
    """Seconds to wait before retrying ``plan``, or ``None``: note the error, move on."""
    delay = retry_delay(error, attempt, max_retries)
    if delay is None:
        _debug("chatwire: %s failed: %s", plan.name, error)
        errors.append((plan.name, error))
    else:
        _debug("chatwire: retrying %s in %.2fs: %s", plan.name, delay, error)
    return delay


def _after_text(error: ProviderError, switching: bool) -> ProviderError:
    """A failure once text has been yielded: with several providers, an interruption."""
    if not switching or isinstance(error, StreamInterrupted):
        return error
    interrupted = StreamInterrupted(
        error.message, provider=error.provider, url=error.url, partial=error.partial
    )
    interrupted.__cause__ = error
    return interrupted


def _give_up(
    plans: list[Plan], errors: list[tuple[str, ProviderError]]
) -> ProviderError | AllProvidersFailed:
    if len(plans) == 1:
        return errors[0][1]
    return AllProvidersFailed(errors)


def _close(reply: object) -> None:
    close = getattr(reply, "close", None)
    if close is not None:
        close()


class _Answering:
    """Who is answering, and what they reported. Shared by a reply and its
    generator; it holds no reference back, so dropping the reply frees the
    generator at once (and with it, the connection)."""

    __slots__ = ("meta", "model", "provider")

    def __init__(self, plan: Plan) -> None:
        self.meta: dict[str, Any] = {}
        self.provider = plan.name
        self.model = plan.model


class _AnswerFacts:
    """``meta``, ``provider`` and ``model`` of whichever provider is answering."""

    __slots__ = ("_answering",)

    def __init__(self, answering: _Answering) -> None:
        self._answering = answering

    @property
    def meta(self) -> dict[str, Any]:
        return self._answering.meta

    @property
    def provider(self) -> str:
        return self._answering.provider

    @property
    def model(self) -> str:
        return self._answering.model


class FallbackReply(_AnswerFacts):
    """The pieces of the first provider that answers; ``meta``, ``provider`` and
    ``model`` are that provider's."""

    __slots__ = ("_pieces",)

    def __init__(self, plans: list[Plan], max_retries: int) -> None:
        super().__init__(_Answering(plans[0]))
        self._pieces = _run_sync(plans, max_retries, self._answering)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        self._pieces.close()


class AsyncFallbackReply(_AnswerFacts):
    """The async twin of ``FallbackReply``."""

    __slots__ = ("_pieces",)

    def __init__(self, plans: list[Plan], max_retries: int) -> None:
        super().__init__(_Answering(plans[0]))
        self._pieces = _run_async(plans, max_retries, self._answering)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces

    async def aclose(self) -> None:
        await self._pieces.aclose()


def _run_sync(
    plans: list[Plan], max_retries: int, answering: _Answering
) -> Generator[str, None, None]:
    errors: list[tuple[str, ProviderError]] = []
    switching = len(plans) > 1
    for plan in plans:
        answering.provider, answering.model = plan.name, plan.model
        attempt = 0
        while True:
            reply = plan.provider.stream(plan.request, plan.model, plan.options, plan.transport)
            pieces = iter(reply)
            try:
                first = next(pieces, None)
            except ProviderError as exc:
                _close(reply)
                delay = _after_failure(plan, exc, attempt, max_retries, errors)
                if delay is None:
                    break
                RetryWait.sleep(delay)
                attempt += 1
                continue
            try:
                if first is not None:
                    yield first
                    yield from pieces
            except ProviderError as exc:
                raise _after_text(exc, switching) from exc.__cause__
            finally:
                _close(reply)
                answering.meta.update(getattr(reply, "meta", {}))
            return
    raise _give_up(plans, errors)


async def _run_async(
    plans: list[Plan], max_retries: int, answering: _Answering
) -> AsyncGenerator[str, None]:
    errors: list[tuple[str, ProviderError]] = []
    switching = len(plans) > 1
    for plan in plans:
        answering.provider, answering.model = plan.name, plan.model
        attempt = 0
        while True:
            reply = plan.provider.astream(plan.request, plan.model, plan.options, plan.transport)
            pieces = aiter(reply)
            try:
                first = await anext(pieces, None)
            except ProviderError as exc:
                await _aclose(reply)
                delay = _after_failure(plan, exc, attempt, max_retries, errors)
                if delay is None:
                    break
                await RetryWait.asleep(delay)
                attempt += 1
                continue
            try:
                if first is not None:
                    yield first
                    async for piece in pieces:
                        yield piece
            except ProviderError as exc:
                raise _after_text(exc, switching) from exc.__cause__
            finally:
                await _aclose(reply)
                answering.meta.update(getattr(reply, "meta", {}))
            return
    raise _give_up(plans, errors)


async def _aclose(reply: object) -> None:
    aclose = getattr(reply, "aclose", None)
    if aclose is not None:
        await aclose()
