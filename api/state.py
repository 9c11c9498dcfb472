"""The API process's long-lived clients, built once in the lifespan."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.metrics import Metrics
from copilot.config import Settings
from copilot.crypto import Keyring
from copilot.events.hub import LogHub
from copilot.events.log import EventLog
from copilot.ratelimit import RateLimiter
from copilot.tools.registry import ToolRegistry


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    event_log: EventLog
    temporal: Client
    tools: ToolRegistry
    hub: LogHub
    limiter: RateLimiter
    metrics: Metrics
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network]

    @cached_property
    def keyring(self) -> Keyring:
        """Encrypts users' provider keys; built on first use from the validated settings."""
        return Keyring.from_settings(self.settings)
