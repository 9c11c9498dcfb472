"""The ``copilot`` command's tree: one typer app, its commands registered here.

    copilot dev | api | worker | migrate | rotate-keys     the server (dev.py, server.py)
    copilot chat | runs list|show | keys set|list|delete    the terminal client (client.py)

Exit codes: 0 done; 1 the work itself failed (a run that did not complete, a key that could not
be decrypted, a child ``copilot dev`` could not keep up); 2 a usage error or a setting, port or
server to fix (the message says how); 130 Ctrl-C.
"""

from __future__ import annotations

import typer
import typer.main

from copilot.cli import client, dev, server

app = typer.Typer(
    name="copilot",
    help="Durable Copilot: a crash-proof copilot server on Temporal.",
    epilog="Run `copilot COMMAND --help` for a command's options.",
    no_args_is_help=True,
    add_completion=False,
    # Markdown: help paragraphs reflow to the terminal's width and `code` shows as code.
    rich_markup_mode="markdown",
    # Only reached through `app()`; main() below calls click itself. Never show locals: they
    # hold the secrets handed to children.
    pretty_exceptions_show_locals=False,
)

_SERVER = "Server"
_CLIENT = "Terminal client (talks to a running server)"

app.command("dev", rich_help_panel=_SERVER)(dev.dev)
app.command("api", rich_help_panel=_SERVER)(server.api)
app.command("worker", rich_help_panel=_SERVER)(server.worker)
app.command("migrate", rich_help_panel=_SERVER)(server.migrate)
app.command("rotate-keys", rich_help_panel=_SERVER)(server.rotate_keys)
app.command("chat", rich_help_panel=_CLIENT)(client.chat)
app.add_typer(client.runs_app, name="runs", rich_help_panel=_CLIENT)
app.add_typer(client.keys_app, name="keys", rich_help_panel=_CLIENT)


def main(argv: list[str] | None = None) -> int:
    """The console script ``copilot`` (and ``python -m copilot.cli``): the exit code."""
    command = typer.main.get_command(app)
    try:
        # prog_name: under `python -m copilot.cli` click would call itself `python -m ...`.
        command.main(args=argv, prog_name="copilot", standalone_mode=True)
    except SystemExit as exit_:  # standalone mode ends every run with one
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return 0
