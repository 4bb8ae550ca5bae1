"""The ``chatwire`` command.

stdout carries only the answer; status, errors and tables of metadata go to
stderr (``providers`` prints its table to stdout, since that is its answer).
``click`` and everything behind the library are imported only when a command
runs, so ``chatwire --help`` starts fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import click

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script."""
    command = _build()
    command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="chatwire")


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    import click

    click.echo(f"chatwire: error: {message}", err=True)
    raise SystemExit(code)


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``-o key=value`` pairs as keywords; a repeated key collects a list."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            _fail(f"option {pair!r} is not of the form key=value")
        if key in options:
            previous = options[key]
            options[key] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            options[key] = value
    return options


def _read_prompt(prompt: str | None) -> str:
    if prompt == "-" or (prompt is None and not sys.stdin.isatty()):
        text = sys.stdin.read()
        if not text.strip():
            _fail("the prompt read from standard input is empty")
        return text
    if prompt is None or not prompt.strip():
        _fail('no prompt given: chatwire "your question", or pipe it in')
    return prompt


def _ask(
    *,
    prompt: str | None,
    provider: str | None,
    model: str | None,
    system: str | None,
    no_stream: bool,
    option: tuple[str, ...],
    debug: bool,
) -> None:
    from ._client import ChatCompletion
    from ._errors import ChatwireError
    from ._status import Spinner

    text = _read_prompt(prompt)
    options = parse_options(option)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": text})
    out = sys.stdout
    wrote = False
    try:
        with Spinner("thinking") as spinner:
            if no_stream:
                answer = ChatCompletion.create(model, messages, provider, **options)
                spinner.stop()
                out.write(answer)
            else:
                with ChatCompletion.create(model, messages, provider, stream=True, **options) as s:
                    for piece in s:
                        spinner.stop()
                        out.write(piece)
                        out.flush()
                        wrote = True
        out.write("\n")
        out.flush()
    except ChatwireError as exc:
        if debug:
            raise
        if wrote:
            out.write("\n")  # end the partial answer's line before the error
            out.flush()
        _fail(str(exc))
    except KeyboardInterrupt:
        out.write("\n")
        out.flush()
        raise SystemExit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (``| head``); stop quietly without a traceback at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(EXIT_ERROR) from None


def _serve(
    host: str, port: int, provider: str, api_key: str | None, options: dict[str, Any], max_body: int
) -> None:
    import click
    import uvicorn

    from ._errors import ChatwireError
    from .server import create_app

    try:
        app = create_app(provider, api_key=api_key, options=options, max_body=max_body)
    except ChatwireError as exc:
        _fail(str(exc))
    _raise_open_file_limit()
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"chatwire gateway on http://{shown_host}:{port} (providers: {provider})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def _raise_open_file_limit() -> None:
    # Each streamed request holds two sockets (client and upstream); the usual
    # soft limit of 1024 would cap a gateway near 500 concurrent streams.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _providers_table() -> None:
    from . import providers
    from ._errors import ChatwireError

    rows = [("name", "url", "models", "stream", "auth", "working")]
    for name in providers.names():
        try:
            module = providers.get(name)
        except ChatwireError as exc:
            rows.append((name, f"(cannot load: {exc})", "", "", "", "no"))
            continue
        models = ", ".join(module.model) or "(any)"
        if getattr(module, "accepts_any_model", False):
            models += " (or any)" if module.model else ""
        rows.append(
            (
                name,
                module.url,
                models,
                _yes(module.supports_stream),
                _yes(module.needs_auth),
                _yes(getattr(module, "working", True)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        )
        sys.stdout.write("\n")


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def _build() -> click.Group:
    import click

    class DefaultToAsk(click.Group):
        """``chatwire "prompt"`` means ``chatwire ask "prompt"``."""

        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            group_flags = ("--help", "-h", "--version")
            if args and args[0] not in self.commands and args[0] not in group_flags:
                args = ["ask", *args]
            elif not args and not sys.stdin.isatty():
                args = ["ask"]
            return super().parse_args(ctx, args)

    from . import __version__

    @click.group(
        cls=DefaultToAsk,
        context_settings={"help_option_names": ["-h", "--help"]},
        invoke_without_command=False,
    )
    @click.version_option(__version__, prog_name="chatwire")
    def cli() -> None:
        """Stream chat completions from any provider; offline by default.

        \b
          chatwire "Why is the sky blue?"
          echo "Summarise this" | chatwire -s "Be brief"
          chatwire -p forefront -o base_url=http://127.0.0.1:8000/free-chat "Hi"
        """

    @cli.command()
    @click.argument("prompt", required=False)
    @click.option("-p", "--provider", help="Provider name (default: local).")
    @click.option("-m", "--model", help="Model name (default: the provider's first).")
    @click.option("-s", "--system", help="System prompt.")
    @click.option("--no-stream", is_flag=True, help="Print the answer only when complete.")
    @click.option(
        "-o", "--option", multiple=True, metavar="KEY=VALUE",
        help="Provider option, e.g. -o temperature=0 -o max_tokens=100 (repeatable).",
    )  # fmt: skip
    @click.option("--debug", is_flag=True, help="Show tracebacks.")
    def ask(**kwargs: Any) -> None:
        """Ask one question (the default command); PROMPT '-' reads standard input."""
        _ask(**kwargs)

    @cli.command()
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
    @click.option(
        "-p",
        "--provider",
        default="local",
        show_default=True,
        help="Provider(s) to serve, comma-separated; the first is the default.",
    )
    @click.option(
        "--api-key",
        envvar="CHATWIRE_API_KEY",
        help="Require 'Authorization: Bearer KEY' (or set CHATWIRE_API_KEY).",
    )
    @click.option(
        "-o",
        "--option",
        multiple=True,
        metavar="KEY=VALUE",
        help="Provider option for every request, e.g. -o base_url=http://...",
    )
    @click.option("--max-body", default=1 << 20, show_default=True, type=int,
                  help="Largest request body accepted, in bytes.")  # fmt: skip
    def serve(
        host: str, port: int, provider: str, api_key: str | None, option: tuple[str, ...],
        max_body: int,
    ) -> None:  # fmt: skip
        """Serve providers over the OpenAI API and the Forefront free-chat protocol."""
        _serve(host, port, provider, api_key, parse_options(option), max_body)

    @cli.command(name="providers")
    def providers_command() -> None:
        """List the providers: name, url, models, stream, auth, working."""
        _providers_table()

    return cli
