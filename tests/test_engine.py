"""The connection pool against real PostgreSQL: a connection the server closed is never
handed out (the checkout asks the driver instead of a ping round trip)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from copilot.store.engine import make_engine
from tests.conftest import Services


async def test_a_connection_the_server_closed_is_replaced_at_checkout(
    services: Services,
) -> None:
    engine = make_engine(services.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
        assert driver is not None
        # Kill it from another session, as a server restart does; wait until the driver saw
        # its socket close (the event loop reads the server's goodbye).
        killer = make_engine(services.database_url, pool_size=1)
        try:
            async with killer.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await killer.dispose()
        async with asyncio.timeout(10):
            while True:
                if driver.is_closed():
                    break
                await asyncio.sleep(0.01)  # waiting for the loop to see the socket close
        # The pool holds only the dead connection: the next checkout must not hand it out.
        async with engine.connect() as conn:
            again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != pid
    finally:
        await engine.dispose()
