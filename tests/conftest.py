"""Session fixtures: real Temporal, PostgreSQL and Redis (embedded, or given by URL), the fake
provider server, and the worker and API as real processes."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from copilot.embedded import Child, Embedded, Ports, free_port, spawn, start_all
from copilot.store.migrate import upgrade
from tests.fakes.provider import FakeProviderServer

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Services:
    database_url: str
    redis_url: str
    temporal_address: str
    data_dir: Path
    embedded: Embedded


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    data_dir = Path(tempfile.mkdtemp(prefix="copilot-test-"))
    ports = Ports(temporal=free_port(), temporal_ui=free_port(), postgres=free_port(),
                  redis=free_port())  # fmt: skip
    emb = start_all(
        data_dir,
        ports,
        database_url=os.environ.get("DATABASE_URL"),
        redis_url=os.environ.get("REDIS_URL"),
        temporal_address=os.environ.get("TEMPORAL_ADDRESS"),
        headless=True,
    )
    assert emb.database_url is not None
    assert emb.redis_url is not None
    assert emb.temporal_address is not None
    upgrade(emb.database_url)
    yield Services(emb.database_url, emb.redis_url, emb.temporal_address, data_dir, emb)
    emb.stop()


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProviderServer]:
    server = FakeProviderServer(free_port())
    server.start()
    yield server
    server.stop()


@dataclass
class Stack:
    api_url: str
    env: dict[str, str]
    services: Services
    provider: FakeProviderServer
    api: Child
    worker: Child
    log_dir: Path

    def spawn_worker(self, name: str = "worker") -> Child:
        return spawn(name, [sys.executable, "-m", "copilot.cli", "worker"],
                     log_path=self.log_dir / f"{name}.log", env=self.env)  # fmt: skip

    def spawn_api(self, port: int, name: str = "api") -> Child:
        return spawn(name, [sys.executable, "-m", "copilot.cli", "api", "--port", str(port)],
                     log_path=self.log_dir / f"{name}.log", env=self.env)  # fmt: skip


def wait_healthy(url: str, child: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.alive(), f"{child.name} died:\n{child.log_tail()}"
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling a child process until it answers
    raise AssertionError(f"{url} not healthy in {timeout}s:\n{child.log_tail()}")


def stack_env(services: Services, provider: FakeProviderServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))}
    env.update(
        {
            "DATABASE_URL": services.database_url,
            "REDIS_URL": services.redis_url,
            "TEMPORAL_ADDRESS": services.temporal_address,
            "TEMPORAL_TASK_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
            "ENCRYPTION_KEY": secrets.token_hex(32),
            "STREAM_TOKEN_SECRET": secrets.token_hex(32),
            "OPENAI_BASE_URL": f"{provider.url}/v1",
            "OPENAI_API_KEY": "sk-test-openai",
            "ANTHROPIC_BASE_URL": provider.url,
            "ANTHROPIC_API_KEY": "sk-test-anthropic",
            "OLLAMA_URL": provider.url,
            "DEFAULT_MODEL": "gpt-4o-mini",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # Every workflow under the full sandbox: a non-deterministic call fails a test.
            "STRICT_SANDBOX": "true",
        }
    )
    env.pop("COPILOT_API_KEY", None)
    env.update(extra)
    return env


@contextlib.contextmanager
def running_stack(
    services: Services, provider: FakeProviderServer, **extra_env: str
) -> Iterator[Stack]:
    """A worker and an API as real processes, with their own task queue and settings."""
    log_dir = ARTIFACTS / "logs" / f"stack-{uuid.uuid4().hex[:6]}"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = stack_env(services, provider, **extra_env)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    partial = Stack(api_url, env, services, provider, None, None, log_dir)  # type: ignore[arg-type]
    worker = partial.spawn_worker()
    api = partial.spawn_api(port)
    partial.worker, partial.api = worker, api
    try:
        wait_healthy(api_url, api)
        yield partial
    finally:
        partial.api.stop()
        partial.worker.stop()


@pytest.fixture(scope="session")
def stack(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    """The worker and the API as real processes, in development mode (no auth)."""
    with running_stack(services, fake_provider) as running:
        yield running


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as c:
        yield c


async def provider_requests(provider: FakeProviderServer, key: str) -> list[dict[str, Any]]:
    """What the fake provider received for a scenario key."""
    async with httpx.AsyncClient() as c:
        resp = await c.get(f"{provider.url}/_requests", params={"key": key})
    requests: list[dict[str, Any]] = resp.json()["requests"]
    return requests


def sent_key(headers: dict[str, str]) -> str | None:
    """The API key a request carried (Anthropic's SDK sends ``x-api-key`` or a bearer token,
    depending on its version)."""
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


def scenario(provider: FakeProviderServer, turns: list[dict[str, object]]) -> str:
    """Register scripted turns under a fresh key; put the key in the user message."""
    key = f"scn-{uuid.uuid4().hex[:12]}"
    httpx.post(f"{provider.url}/_scenarios", json={"key": key, "turns": turns}).raise_for_status()
    return key
