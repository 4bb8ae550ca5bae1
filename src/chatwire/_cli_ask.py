"""``chatwire "prompt"`` and ``chatwire chat``: ask, stream, log, continue."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ._errors import ChatwireError

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "ask",
    "chat",
    "fail",
    "log_for_run",
    "parse_options",
]

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .store import Store

EXIT_ERROR = 1
EXIT_USAGE = 2  # the command line itself is wrong, as click reports it
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    sys.stderr.write(f"chatwire: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``-o key=value`` pairs as keywords; a repeated key collects a list."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"option {pair!r} is not of the form key=value", EXIT_USAGE)
        if key in ("log", "store", "conversation_id"):
            fail(f"option {key!r} is not a provider option", EXIT_USAGE)
        if key in options:
            previous = options[key]
            options[key] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            options[key] = value
    from ._models import fields_from_text

    try:
        return fields_from_text(options)
    except ChatwireError as exc:
        fail(f"option {exc}", EXIT_USAGE)


def schema_format(schema: str) -> dict[str, Any]:
    """The ``response_format`` for ``--schema``: a file holding a JSON Schema, or the schema."""
    import json
    from pathlib import Path

    path = Path(schema)
    try:
        text = path.read_text(encoding="utf-8") if path.is_file() else schema
        parsed = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"--schema is neither a readable file nor JSON: {exc}", EXIT_USAGE)
    if not isinstance(parsed, dict):
        fail("--schema must be a JSON Schema object", EXIT_USAGE)
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": parsed}}


def _read_prompt(prompt: str | None) -> str:
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
        if not text.strip():
            fail("the prompt read from standard input is empty", EXIT_USAGE)
        return text
    if prompt is None or not prompt.strip():
        fail('no prompt given: chatwire "your question", or pipe it in', EXIT_USAGE)
    return prompt


def log_for_run(no_log: bool) -> Store | None:
    """The log to write to, unless logging is off for this run."""
    from .store import logging_disabled, open_store

    if no_log or logging_disabled():
        return None
    _show_log_warnings()
    return open_store()


def _show_log_warnings() -> None:
    # The store reports a failing log once through the ``chatwire`` logger;
    # the command shows that one line on stderr, without the logging frame.
    import logging

    logger = logging.getLogger("chatwire")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


class Conversation:
    """Where the next exchange goes: its conversation id, history, provider, model."""

    def __init__(
        self,
        store: Store | None,
        continue_latest: bool,
        cid: str | None,
        provider: str | None,
        model: str | None,
        system: str | None,
    ) -> None:
        from .store import new_conversation_id, open_store

        self.store = store
        self.provider = provider
        self.model = model
        self.messages: list[dict[str, str]] = []
        if continue_latest or cid:
            reader = store or open_store()
            cid = cid or reader.latest_conversation_id()
            if cid is None:
                fail(f"there is no conversation in {reader.describe()} to continue")
            try:
                last = reader.last_exchange(cid)
                self.messages = last.history()
            except ChatwireError as exc:
                fail(str(exc))
            # Go on with the provider and model the conversation used, unless told otherwise.
            if provider is None:
                self.provider, self.model = last.provider, model or last.model
        elif system:
            self.messages = [{"role": "system", "content": system}]
        self.cid = cid or new_conversation_id()

    def ask(self, prompt: str, options: dict[str, Any]) -> Any:
        """Open a stream for ``prompt`` after the history; the answer joins the history."""
        from ._client import ChatCompletion

        messages = [*self.messages, {"role": "user", "content": prompt}]
        stream = ChatCompletion.create(
            self.model, messages, self.provider, stream=True,
            store=self.store, conversation_id=self.cid, **options,
        )  # fmt: skip
        self.messages = messages
        return stream

    def answered(self, text: str) -> None:
        if text:
            self.messages.append({"role": "assistant", "content": text})


def _print_stream(stream: Any, out: Any) -> None:
    """Write pieces as they arrive, a spinner on stderr until the first one."""
    from ._status import Spinner

    with Spinner("thinking") as spinner:
        for piece in stream:
            spinner.stop()
            out.write(piece)
            out.flush()


def ask(
    *,
    prompt: str | None,
    provider: str | None,
    model: str | None,
    system: str | None,
    no_stream: bool,
    option: tuple[str, ...],
    debug: bool,
    continue_: bool,
    cid: str | None,
    no_log: bool,
    schema: str | None,
) -> None:
    text = _read_prompt(prompt)
    options = parse_options(option)
    if schema is not None:
        options["response_format"] = schema_format(schema)
    store = log_for_run(no_log)
    conversation = Conversation(store, continue_, cid, provider, model, system)
    out = sys.stdout
    stream = None
    try:
        stream = conversation.ask(text, options)
        with stream:
            if no_stream:
                from ._status import Spinner

                with Spinner("thinking"):
                    whole = "".join(stream)
                out.write(whole)
            else:
                _print_stream(stream, out)
        out.write("\n")
        out.flush()
    except ChatwireError as exc:
        if debug:
            raise
        if stream is not None and stream.text and not no_stream:
            out.write("\n")  # end the partial answer's line before the error
            out.flush()
        fail(str(exc))
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (``| head``); stop quietly, without a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(EXIT_ERROR) from None


def chat(
    *,
    provider: str | None,
    model: str | None,
    system: str | None,
    option: tuple[str, ...],
    debug: bool,
    continue_: bool,
    cid: str | None,
    no_log: bool,
) -> None:
    """An interactive chat: Ctrl-C stops an answer, Ctrl-D or ``exit`` leaves."""
    import contextlib

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())

    options = parse_options(option)
    store = log_for_run(no_log)
    conversation = Conversation(store, continue_, cid, provider, model, system)
    err = sys.stderr
    err.write(
        f"chatwire chat (conversation {conversation.cid}): Ctrl-C stops an answer, "
        "Ctrl-D or 'exit' leaves.\n"
    )
    if conversation.messages:
        err.write(f"continuing after {len(conversation.messages)} messages\n")
    err.flush()
    out = sys.stdout
    while True:
        try:
            line = input("> ")
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            out.write("\n")
            continue
        if line.strip() in ("exit", "quit"):
            return
        if not line.strip():
            continue
        stream = None
        try:
            stream = conversation.ask(line, options)
            with stream:
                _print_stream(stream, out)
            out.write("\n")
        except KeyboardInterrupt:
            if stream is not None:
                stream.close()
            out.write("\n")
            err.write("[answer stopped]\n")
        except ChatwireError as exc:
            if debug:
                raise
            if stream is not None and stream.text:
                out.write("\n")
            err.write(f"chatwire: error: {exc}\n")
        out.flush()
        err.flush()
        if stream is not None:
            conversation.answered(stream.text)
