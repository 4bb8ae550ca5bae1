"""The ``chatwire`` command: the click definitions, nothing more.

stdout carries only the answer (or the listing asked for); status and errors
go to stderr. ``click`` and everything behind the library are imported only
when the command runs, and each command's work only when it is chosen, so
``chatwire --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import click

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script."""
    command = _build()
    command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="chatwire")


def _database_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--database-url``: where the log is, for this command and the processes it starts."""
    import click

    def settle(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value:  # every part of the command, and its worker processes, read it from here
            from .store import DATABASE_URL_ENV

            os.environ[DATABASE_URL_ENV] = value

    return click.option(
        "--database-url", metavar="URL", expose_value=False, callback=settle,
        help="The log: postgresql://... or sqlite:///path (or set CHATWIRE_DATABASE_URL; "
        "default: the SQLite file in CHATWIRE_HOME).",
    )(function)  # fmt: skip


def _conversation_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``ask`` and ``chat`` share."""
    import click

    decorators: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("-p", "--provider", help="Provider name (default: local)."),
        click.option("-m", "--model", help="Model name (default: the provider's first)."),
        click.option("-s", "--system", help="System prompt (for a new conversation)."),
        click.option(
            "-o",
            "--option",
            multiple=True,
            metavar="KEY=VALUE",
            help="Provider option, e.g. -o temperature=0 -o max_tokens=100 (repeatable).",
        ),
        click.option(
            "-c",
            "--continue",
            "continue_",
            is_flag=True,
            help="Continue the latest conversation in the log.",
        ),
        click.option("--cid", help="Continue the conversation with this id."),
        click.option(
            "--no-log",
            is_flag=True,
            help="Do not write to the conversation log (or set CHATWIRE_NO_LOG=1).",
        ),
        click.option("--debug", is_flag=True, help="Show tracebacks."),
        _database_option,
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _build() -> click.Group:
    import click

    from . import __version__

    class DefaultToAsk(click.Group):
        """``chatwire "prompt"`` means ``chatwire ask "prompt"``."""

        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            group_flags = ("--help", "-h", "--version")
            if args and args[0] not in self.commands and args[0] not in group_flags:
                args = ["ask", *args]
            elif not args and not sys.stdin.isatty():
                args = ["ask"]
            return super().parse_args(ctx, args)

    @click.group(cls=DefaultToAsk, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="chatwire")
    def cli() -> None:
        """Stream chat completions from any provider; offline by default.

        \b
          chatwire "Why is the sky blue?"
          echo "Summarise this" | chatwire -s "Be brief"
          chatwire "And in one word?" -c          # continue the latest conversation
          chatwire chat                           # talk
          chatwire serve                          # OpenAI-compatible gateway + chat page
        """

    @cli.command()
    @click.argument("prompt", required=False)
    @_conversation_options
    @click.option("--no-stream", is_flag=True, help="Print the answer only when complete.")
    @click.option(
        "--schema",
        metavar="SCHEMA",
        help="Answer with JSON that fits this JSON Schema (a file, or the schema inline).",
    )
    def ask(**kwargs: Any) -> None:
        """Ask one question (the default command); PROMPT '-' reads standard input."""
        from ._cli_ask import ask

        ask(**kwargs)

    @cli.command()
    @_conversation_options
    def chat(**kwargs: Any) -> None:
        """Chat in the terminal: Ctrl-C stops an answer, Ctrl-D or 'exit' leaves."""
        from ._cli_ask import chat

        chat(**kwargs)

    @cli.command()
    @click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        help="Address to bind; anything but loopback needs an API key.",
    )
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
        "--api-key-file",
        type=click.Path(dir_okay=False),
        help="Read the API key from this file, so it does not show in the process list.",
    )
    @click.option(
        "--allow-no-key",
        is_flag=True,
        help="Serve a non-loopback address without an API key: anyone who reaches it may use it.",
    )
    @click.option(
        "--allowed-host",
        multiple=True,
        metavar="NAME",
        help="Without a key, also answer requests for this Host (repeatable; '*' for any).",
    )
    @click.option(
        "--cors-origin",
        multiple=True,
        metavar="ORIGIN",
        help="Let a web app at ORIGIN call the API from a browser (repeatable).",
    )
    @click.option(
        "-o",
        "--option",
        multiple=True,
        metavar="KEY=VALUE",
        help="Provider option for every request, e.g. -o base_url=http://...",
    )
    @click.option(
        "--max-body",
        default=1 << 20,
        show_default=True,
        type=click.IntRange(1),
        help="Largest request body accepted, in bytes.",
    )
    @click.option("--no-log", is_flag=True, help="Do not write to the conversation log.")
    @_database_option
    @click.option("--max-concurrent", default=1024, show_default=True, type=click.IntRange(1),
                  help="Requests answered at once; more get 429 straight away.")  # fmt: skip
    @click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
                  help="Processes serving the port, each with its own event loop "
                  "(they share the log).")  # fmt: skip
    @click.pass_context
    def serve(ctx: click.Context, /, option: tuple[str, ...], **settings: Any) -> None:
        """Serve providers over the OpenAI API, the Forefront protocol and a chat page.

        With several providers (-p a,b), a request that names no model falls back
        from one to the next.
        """
        from click.core import ParameterSource

        from ._cli_ask import parse_options
        from ._cli_misc import ServeSettings, serve

        key_given = ctx.get_parameter_source("api_key") is ParameterSource.COMMANDLINE
        if settings["api_key_file"] and key_given:
            raise click.UsageError("give --api-key or --api-key-file, not both")
        serve(ServeSettings(options=parse_options(option), **settings))

    @cli.command(name="providers")
    def providers_command() -> None:
        """List the providers: name, url, models, stream, auth, working."""
        from ._cli_misc import providers_table

        providers_table()

    @cli.group(invoke_without_command=True)
    @click.option("-n", "count", default=10, show_default=True, help="How many exchanges.")
    @click.option("--cid", help="Show this conversation.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.option("-q", "query", help="Full-text search in prompts and answers.")
    @_database_option
    @click.pass_context
    def logs(ctx: click.Context, count: int, cid: str | None, as_json: bool,
             query: str | None) -> None:  # fmt: skip
        """Show the conversation log: recent exchanges, a conversation, or a search."""
        if ctx.invoked_subcommand is None:
            from ._cli_misc import logs as show_logs

            show_logs(count, cid, as_json, query)

    @logs.command()
    def path() -> None:
        """Print where the log is."""
        from ._cli_misc import logs_path

        logs_path()

    return cli
