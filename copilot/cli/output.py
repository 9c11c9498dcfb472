"""What the ``copilot`` command writes: rich on a terminal, plain lines in pipes, CI and logs.

Rich decides per stream: on a terminal it draws colour, spinners and tables; anywhere else
(``docker logs``, a CI log, ``| grep``) it writes plain text and draws no spinner at all.
Consoles are made per command, not at import, so each one looks at the streams the command
really writes to (a test runner swaps them).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TextIO, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from copilot.client import ClientError
from copilot.config import SettingsError
from copilot.embedded import EmbeddedError

P = ParamSpec("P")
R = TypeVar("R")

# The errors a user can fix (a setting, a taken port, an unreachable server): their message says
# how, so they end the command with that message and exit code 2, never a traceback.
USER_ERRORS = (SettingsError, EmbeddedError, ClientError)


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a person's terminal, or a pipe or file that a program reads."""
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def console(*, stderr: bool = False) -> Console:
    return Console(
        stderr=stderr,
        # Rich's own test would take FORCE_COLOR (set in many CI jobs) as a terminal: spinner
        # frames in the CI log, tables where a script parses rows. Ask the stream itself.
        force_terminal=is_terminal(sys.stderr if stderr else sys.stdout),
        # A long line (a URL, an error and its fix) stays one line, to copy and to grep.
        soft_wrap=True,
        # Our text holds brackets (`[run ...]`, log tails) that rich would read as style tags,
        # and it is not Python reprs to colour.
        markup=False,
        highlight=False,
    )


@contextmanager
def working(out: Console, what: str) -> Iterator[Callable[[str], None]]:
    """A spinner saying ``what`` is under way (on a terminal only); yields a way to re-word it.

    Log records and other output during it must go through ``out`` (see ``setup_logging``),
    or they land in the middle of the spinner's line.
    """
    with out.status(what, spinner="dots") as status:
        yield lambda text: status.update(text)


def reports_errors(where: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Turn a user-fixable error into ``<where>: <message>`` on stderr, and exit code 2.

    ``where`` is the command as typed (``copilot runs list``). Plain text on purpose (no
    panel): the messages carry the fix, often a command or a variable name, and must stay
    copyable and greppable in a CI log.
    """

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)  # typer reads the wrapped signature for the options
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except USER_ERRORS as exc:
                console(stderr=True).print(f"{where}: {exc}", style="red")
                raise typer.Exit(2) from None

        return run

    return decorate


class _RedactTokens(logging.Filter):
    """Stream tokens travel in ``?token=``; they must never reach a log."""

    _pattern = re.compile(r"(token=)[^&\s\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                self._pattern.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str):
            record.msg = self._pattern.sub(r"\1[redacted]", record.msg)
        return True


def setup_logging(level: str, ui: Console | None = None) -> None:
    """One handler on the root logger: rich on a terminal, one plain line a record elsewhere.

    Plain is what log collectors and the ``copilot dev`` supervisor (which reads its children's
    output through a pipe) want; the format is the same in both, only the colour differs.
    ``ui``: the stderr console a command draws its spinner on, so records print above it.
    """
    handler: logging.Handler
    if is_terminal(sys.stderr):
        handler = RichHandler(
            console=ui or console(stderr=True),
            show_path=False,
            markup=False,
            rich_tracebacks=True,
            tracebacks_show_locals=False,  # locals hold secrets (the env given to children)
            log_time_format="%H:%M:%S",
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(_RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
