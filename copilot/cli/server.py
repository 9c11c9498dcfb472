"""The server's own commands: ``copilot api``, ``worker``, ``migrate``, ``rotate-keys``.

Each reads the one ``Settings`` from the environment (and ``.env``), refuses to start on a
setting it cannot work with (a ``SettingsError`` whose message says what to set), and imports
its heavy parts (FastAPI, the worker, Alembic) only when it runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated

import typer

from copilot.cli.output import console, reports_errors, setup_logging, working
from copilot.config import Settings, SettingsError

log = logging.getLogger("copilot")


@reports_errors("copilot api")
def api(
    host: Annotated[
        str | None,
        typer.Option(help="Bind address (default: HOST, else 127.0.0.1).", show_default=False),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: PORT, else 3001).", show_default=False)
    ] = None,
) -> None:
    """Run the HTTP API (needs DATABASE_URL, REDIS_URL, TEMPORAL_ADDRESS and the secrets).

    Any number can run side by side. Outside `copilot dev` it refuses to start without
    ENCRYPTION_KEY and STREAM_TOKEN_SECRET, and to listen beyond loopback without
    COPILOT_API_KEY.
    """
    import uvicorn

    from api.app import create_app

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    settings.check_listen(host)
    settings.require_runtime()
    setup_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=True,
        timeout_graceful_shutdown=5,
        proxy_headers=False,
        loop=settings.event_loop,
    )


@reports_errors("copilot worker")
def worker() -> None:
    """Run a Temporal worker. Any number can run side by side."""
    from worker import run_worker

    settings = Settings()
    settings.require_runtime()
    setup_logging(settings.log_level)
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        runner.run(run_worker(settings))


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop (``auto``: where it is installed, as uvicorn picks it for the API), or
    asyncio's own (None)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise SettingsError("EVENT_LOOP=uvloop, but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


@reports_errors("copilot migrate")
def migrate() -> None:
    """Apply database migrations to DATABASE_URL (`copilot dev` applies them itself)."""
    from copilot.store.migrate import upgrade

    settings = Settings()
    if not settings.database_url:
        raise SettingsError("DATABASE_URL is not set (or run `copilot dev`, which migrates).")
    ui = console(stderr=True)
    setup_logging(settings.log_level, ui)
    with working(ui, "applying database migrations…"):
        upgrade(settings.database_url)
    log.info("database schema is up to date")


@reports_errors("copilot rotate-keys")
def rotate_keys(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be re-encrypted; change nothing.")
    ] = False,
) -> None:
    """Re-encrypt stored provider keys under ENCRYPTION_KEY.

    Key rotation: set the new key as ENCRYPTION_KEY and the old one in ENCRYPTION_KEYS_OLD
    (id:hex), restart, run this, then drop the old key. One transaction: a crash leaves every
    row readable. Exit code 1 when a stored key could not be decrypted with any key given.
    """
    from copilot.crypto import Keyring
    from copilot.store.provider_keys import rotate_database

    settings = Settings()
    if not settings.database_url:
        raise SettingsError("DATABASE_URL is not set: point it at the database to rotate.")
    keyring = Keyring.from_settings(settings)  # validates ENCRYPTION_KEY(S_OLD)
    ui = console(stderr=True)
    setup_logging(settings.log_level, ui)
    with working(ui, "re-encrypting provider keys…"):
        report = asyncio.run(
            rotate_database(settings.database_url, keyring=keyring, dry_run=dry_run)
        )
    verb = "would re-encrypt" if dry_run else "re-encrypted"
    console().print(
        f"{verb} {report.rotated} provider key(s) under key id {keyring.primary_id}; "
        f"{report.current} already under it"
    )
    for failure in report.failed:
        ui.print(f"could not decrypt {failure}", style="red")
    if report.failed:
        raise typer.Exit(1)
