"""Connecting to Temporal: the embedded dev server, a production cluster, or Temporal Cloud."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client, TLSConfig

from copilot.config import Settings


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


async def connect(settings: Settings) -> Client:
    if not settings.temporal_address:
        raise RuntimeError("TEMPORAL_ADDRESS is not set")
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert or settings.temporal_tls_ca or settings.temporal_api_key:
        tls = TLSConfig(
            client_cert=_read(settings.temporal_tls_cert),
            client_private_key=_read(settings.temporal_tls_key),
            server_root_ca_cert=_read(settings.temporal_tls_ca),
            domain=settings.temporal_tls_server_name,
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls,
        api_key=api_key,
    )
