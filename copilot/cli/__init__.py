"""The ``copilot`` command line, on typer (click) with rich output.

``app.py`` holds the command tree and ``main`` (the console script); ``dev.py`` and
``supervise.py`` are ``copilot dev``; ``server.py`` the server's other commands; ``client.py``
the terminal client's; ``output.py`` consoles, spinners, logging and the error convention.
"""

from copilot.cli.app import app, main

__all__ = ["app", "main"]
