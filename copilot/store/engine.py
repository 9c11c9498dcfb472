"""Database engine and sessions. Built once per process (API lifespan, worker start)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_url(url: str) -> str:
    """Accept the usual ``postgres://`` / ``postgresql://`` forms and pick the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """A pool whose checkout costs no round trip.

    ``pool_pre_ping`` cost a ping wrapped in BEGIN and ROLLBACK before every checkout (about a
    tenth of the worker's CPU). Instead a checkout asks the driver whether the server has
    closed the connection, which asyncpg knows without a round trip once the event loop has
    seen the socket close (a PostgreSQL restart or ``pg_terminate_backend``): such a
    connection is dropped and the pool hands out another. A connection cut silently (a
    firewall) fails its first statement; SQLAlchemy then drops the whole pool, an activity
    retries (Temporal) and a request answers 503 ``unavailable``. ``pool_recycle`` retires
    connections before idle-connection timeouts usually cut them.
    """
    engine = create_async_engine(
        async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_recycle=900
    )
    event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


def _drop_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError("the server closed this connection")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for reads that need no transaction (one statement, or rows that do not change
    under it): autocommit, so a read is one round trip, without BEGIN and ROLLBACK around it."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )
