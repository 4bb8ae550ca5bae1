"""How an HTTP provider describes an exchange, free of I/O.

A provider describes its wire format once as a ``WireRequest``: where to POST
which bytes, and a pure ``read_event`` that turns one decoded Server-Sent
Event into text (or ``None`` to skip it, or raises ``EndOfStream``). The
helpers here read batches of events the fast way when they are the plain
kind. ``_http`` runs a ``WireRequest`` over the network.
"""

from __future__ import annotations

__all__ = [
    "HTTP_OPTIONS",
    "EndOfStream",
    "WireRequest",
    "header_safe",
    "json_request",
    "read_batch",
    "upstream_error",
    "url_from",
]

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .. import __version__
from .._errors import InvalidRequest, ProviderError, StreamInterrupted
from .._sse import DEFAULT_MAX_EVENT_BYTES, shown
from .._validate import Option

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


def header_safe(value: str) -> bool:
    """Printable ASCII: what can go into a request line or header as it is."""
    return value.isascii() and value.isprintable()


def _is_http_url(value: str) -> bool:
    plain = header_safe(value) and " " not in value
    return plain and value.startswith(("http://", "https://")) and len(value) > len("https://")


def url_from(checked: Mapping[str, Any], variable: str, default: str) -> str:
    """The ``base_url`` option, else the environment ``variable``, else ``default``."""
    if checked.get("base_url"):
        return str(checked["base_url"])  # checked as an option already
    from_environment = os.environ.get(variable)
    if not from_environment:
        return default
    if not _is_http_url(from_environment):
        raise InvalidRequest(
            f"{variable} must be an http:// or https:// URL, got {from_environment!r}"
        )
    return from_environment


HTTP_OPTIONS: Mapping[str, Option] = {
    option.name: option
    for option in (
        Option("base_url", str, "an http:// or https:// URL", check=_is_http_url),
        Option("timeout", float, "seconds", minimum=0.001),
        Option("connect_timeout", float, "seconds", minimum=0.001),
        Option("read_timeout", float, "seconds", minimum=0.001),
        Option("max_event_bytes", int, "bytes", minimum=1024),
    )
}


class EndOfStream(Exception):
    """Raised when the stream says it is finished; ``texts`` came before the end."""

    def __init__(self, texts: list[str] | None = None) -> None:
        super().__init__()
        self.texts = texts or []


def read_each(
    read_event: Callable[[str, dict[str, Any]], Any], datas: list[str], meta: dict[str, Any]
) -> list[Any]:
    """The pieces of a batch of events, one event at a time (the general path).

    ``read_event`` gives an event's text, ``None``, or a list of pieces (text
    and other events of the answer, such as tool-call deltas).
    """
    texts: list[Any] = []
    for data in datas:
        try:
            text = read_event(data, meta)
        except EndOfStream:
            raise EndOfStream(texts) from None
        except ProviderError as exc:
            exc.before = texts
            raise
        if text.__class__ is list:
            texts += text
        elif text:
            texts.append(text)
    return texts


def read_batch(
    datas: list[str],
    meta: dict[str, Any],
    read_event: Callable[[str, dict[str, Any]], Any],
    plain_text: Callable[[Any], str | None],
) -> list[Any]:
    """The texts of a batch of events: in bulk when every event is the plain kind.

    ``plain_text`` takes one parsed event and returns its text when it is the
    common, text-only kind, or ``None`` (or fails on its shape) otherwise; then
    the whole batch goes through ``read_event``, one event at a time, which
    decides what every other kind of event means. An event carrying an
    ``error`` is never plain, whatever else it holds.
    """
    parsed = json_batch(datas)
    if parsed is not None:
        texts: list[str] = []
        try:
            for event in parsed:
                text = plain_text(event)
                if text is None or "error" in event:
                    break
                if text:
                    texts.append(text)
            else:
                return texts
        except (AttributeError, KeyError, TypeError, ValueError):
            pass
    return read_each(read_event, datas, meta)


def upstream_error(parsed: dict[str, Any], data: str) -> StreamInterrupted:
    """An error object in place of the answer: the stream broke at the source."""
    error = parsed["error"]
    message = error.get("message") if isinstance(error, dict) else error
    return StreamInterrupted(f"upstream error: {message or shown(data.encode())}")


_decode_batch = msgspec.json.Decoder(list[Any]).decode


def json_batch(datas: list[str]) -> list[Any] | None:
    """Parse a batch of JSON event payloads in one call, or ``None`` if that fails.

    One decode over the whole batch costs a fraction of one call per event,
    and msgspec's decoder a quarter of ``json.loads``. Callers fall back to
    ``read_each`` on ``None`` (a payload that is not JSON, ``[DONE]``, JSON
    only ``json`` reads such as ``NaN``...) so errors are still found and
    named per event.
    """
    try:
        parsed = _decode_batch("[" + ",".join(datas) + "]")
    except ValueError:  # msgspec's DecodeError, or a lone surrogate in the text
        return None
    # A payload holding a top-level comma would shift the count.
    return parsed if len(parsed) == len(datas) else None


@dataclass(frozen=True, slots=True)
class WireRequest:
    """Everything the drivers need to run one exchange.

    ``read_events`` turns the data of a batch of Server-Sent Events (those one
    network chunk completed) into text pieces; when ``read_body`` is set
    instead, the answer is one JSON document read whole. Both may note facts
    about the answer (``usage``, ``finish_reason``) in ``meta``.
    """

    provider: str
    url: str
    body: bytes
    read_events: Callable[[list[str], dict[str, Any]], list[Any]]
    read_body: Callable[[bytes, dict[str, Any]], list[Any]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES


def json_request(
    provider: str,
    url: str,
    payload: object,
    *,
    read_events: Callable[[list[str], dict[str, Any]], list[Any]],
    options: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    read_body: Callable[[bytes, dict[str, Any]], list[Any]] | None = None,
) -> WireRequest:
    """A ``WireRequest`` POSTing ``payload`` as JSON, timeouts from ``options``."""
    timeout = options.get("timeout")
    connect = options.get("connect_timeout") or timeout or DEFAULT_CONNECT_TIMEOUT
    read = options.get("read_timeout") or timeout or DEFAULT_READ_TIMEOUT
    all_headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "User-Agent": f"chatwire/{__version__}",
    }
    all_headers.update(headers or {})
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return WireRequest(
        provider=provider,
        url=url,
        body=body,
        read_events=read_events,
        read_body=read_body,
        headers=all_headers,
        connect_timeout=connect,
        read_timeout=read,
        max_event_bytes=options.get("max_event_bytes") or DEFAULT_MAX_EVENT_BYTES,
    )
