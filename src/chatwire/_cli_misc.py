"""``chatwire serve``, ``chatwire providers`` and ``chatwire logs``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ._cli_ask import EXIT_USAGE, fail, log_for_run
from ._errors import ChatwireError

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "ServeSettings",
    "is_loopback",
    "logs",
    "logs_path",
    "providers_table",
    "serve",
    "worker_app",
]


@dataclass(frozen=True)
class ServeSettings:
    """What ``chatwire serve`` was asked for."""

    host: str
    port: int
    provider: str
    api_key: str | None
    api_key_file: str | None
    allow_no_key: bool
    allowed_host: tuple[str, ...]
    cors_origin: tuple[str, ...]
    options: dict[str, Any]
    max_body: int
    no_log: bool
    max_concurrent: int
    workers: int = 1


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve anywhere


def _read_key_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            key = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the API key file {path!r}: {exc}", EXIT_USAGE)
    if not key:
        fail(f"the API key file {path!r} is empty", EXIT_USAGE)
    return key


def _gateway(settings: ServeSettings) -> Starlette:
    """The application ``settings`` describe, refused (exit 2) when it would be unsafe."""
    from .server import create_app

    host = settings.host
    api_key = _read_key_file(settings.api_key_file) if settings.api_key_file else settings.api_key
    if not api_key and not is_loopback(host) and not settings.allow_no_key:
        fail(
            f"refusing to serve {host} without an API key: set --api-key, --api-key-file "
            "or CHATWIRE_API_KEY (or pass --allow-no-key to serve it open)",
            EXIT_USAGE,
        )
    wildcard = host in ("0.0.0.0", "::", "")
    allowed_hosts = [*settings.allowed_host, *(() if wildcard else (host,))]
    try:
        return create_app(
            settings.provider, api_key=api_key or None, options=settings.options,
            max_body=settings.max_body, store=log_for_run(settings.no_log),
            max_concurrent=settings.max_concurrent, allowed_hosts=allowed_hosts,
            cors_origins=settings.cors_origin,
        )  # fmt: skip
    except ChatwireError as exc:
        fail(str(exc))


# How ``serve --workers N`` hands its settings to the worker processes it starts.
_WORKER_SETTINGS_ENV = "CHATWIRE_WORKER_SETTINGS"


def worker_app() -> Starlette:
    """The gateway of one ``serve --workers N`` process (uvicorn calls this in each)."""
    fields = json.loads(os.environ[_WORKER_SETTINGS_ENV])
    for name in ("allowed_host", "cors_origin"):
        fields[name] = tuple(fields[name])
    app = _gateway(ServeSettings(**fields))
    _settle_garbage_collector()
    return app


def serve(settings: ServeSettings) -> None:
    import uvicorn

    app = _gateway(settings)  # checked here, once, even when workers build their own
    _raise_open_file_limit()
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    shown = f"http://{shown_host}:{settings.port}"
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    sys.stderr.write(f"chatwire gateway on {shown} (providers: {settings.provider}{workers})\n")
    common: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "log_level": "warning",
        "access_log": False,
    }  # fmt: skip
    if settings.workers == 1:
        _settle_garbage_collector()
        uvicorn.run(app, **common)
        return
    # The key itself stays out of the environment when it came from a file.
    os.environ[_WORKER_SETTINGS_ENV] = json.dumps(asdict(settings))
    uvicorn.run("chatwire._cli_misc:worker_app", factory=True, workers=settings.workers, **common)


_GC_THRESHOLD = 20_000  # allocations between young collections; Python's default is 700


def _settle_garbage_collector() -> None:
    # A streaming gateway keeps many live objects for every open stream; at
    # the default threshold the cycle collector scans them every few hundred
    # allocations, for nothing: they are freed by reference counting. Startup's
    # objects (modules, the app) are frozen out of the scans altogether.
    import gc

    gc.freeze()
    gc.set_threshold(_GC_THRESHOLD, *gc.get_threshold()[1:])


def _raise_open_file_limit() -> None:
    # Each streamed request holds two sockets (client and upstream); the usual
    # soft limit of 1024 would cap a gateway near 500 concurrent streams.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def providers_table() -> None:
    from . import providers

    rows = [("name", "url", "models", "stream", "auth", "working")]
    for name in providers.names():
        try:
            provider = providers.get(name)
        except ChatwireError as exc:
            rows.append((name, f"(cannot load: {exc})", "", "", "", "no"))
            continue
        models = ", ".join(provider.models) or "(any)"
        if provider.accepts_any_model and provider.models:
            models += " (or any)"
        rows.append(
            (
                name,
                provider.url,
                models,
                _yes(provider.supports_stream),
                _yes(provider.needs_auth),
                _yes(provider.working),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def logs(count: int, cid: str | None, as_json: bool, query: str | None) -> None:
    """Recent exchanges, one conversation, or a full-text search."""
    from .store import open_store

    store = open_store()
    if store.path is not None and not store.path.exists():
        fail(f"no log yet at {store.path}")
    try:
        if query:
            exchanges = store.search(query, count)
        elif cid:
            exchanges = store.conversation(cid)
        else:
            exchanges = store.recent(count)
    except Exception as exc:  # a damaged or locked file, a database away
        fail(f"cannot read {store.describe()}: {exc}")
    if as_json:
        json.dump([e.to_json() for e in exchanges], sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    for exchange in exchanges:
        took = f"{exchange.total_seconds:.1f}s" if exchange.total_seconds is not None else "-"
        status = exchange.status.upper() if exchange.status != "complete" else "complete"
        sys.stdout.write(
            f"## {exchange.started_at}  conversation {exchange.conversation_id}  "
            f"{exchange.provider}/{exchange.model}  {status}  {took}\n"
        )
        sys.stdout.write(f"> {exchange.prompt}\n")
        sys.stdout.write(exchange.response.rstrip() + "\n")
        for call in exchange.tool_calls or ():
            function = call.get("function") or {}
            sys.stdout.write(f"[tool call {function.get('name')}({function.get('arguments')})]\n")
        if exchange.error:
            sys.stdout.write(f"[{exchange.status}: {exchange.error}]\n")
        sys.stdout.write("\n")


def logs_path() -> None:
    from .store import open_store

    sys.stdout.write(f"{open_store().describe()}\n")
