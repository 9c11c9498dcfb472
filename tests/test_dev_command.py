"""`copilot dev` as a user runs it: from an empty data folder, then again on the same folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from copilot.embedded import free_port, port_free
from tests.conftest import ARTIFACTS, scenario
from tests.fakes.provider import FakeProviderServer
from tests.sse import collect

pytestmark = pytest.mark.slow


class DevProcess:
    def __init__(self, data_dir: Path, ports: dict[str, int], env: dict[str, str]) -> None:
        self.ports = ports
        self.url = f"http://127.0.0.1:{ports['api']}"
        self.log = ARTIFACTS / "logs" / f"dev-{ports['api']}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "copilot.cli", "dev",
            "--data-dir", str(data_dir),
            "--port", str(ports["api"]),
            "--temporal-port", str(ports["temporal"]),
            "--temporal-ui-port", str(ports["ui"]),
            "--postgres-port", str(ports["postgres"]),
            "--redis-port", str(ports["redis"]),
        ]  # fmt: skip
        self.started = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                healthy = httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
                # Ready once healthy *and* the start-up banner is out (it follows the health
                # check in `copilot dev`, so it may lag the first 200 by a moment).
                if healthy and "Press Ctrl-C to stop everything." in self.log.read_text():
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling a child process until it answers
        raise AssertionError(self.log.read_text()[-3000:])

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def _env(provider: FakeProviderServer) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "TEMPORAL_ADDRESS", "COPILOT_API_KEY")
    }
    env.update(
        {
            "OPENAI_BASE_URL": f"{provider.url}/v1",
            "OPENAI_API_KEY": "sk-test",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def _chat(url: str, body: dict[str, object]) -> tuple[str, list]:
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("POST", "/api/copilot/chat", json=body) as resp,
    ):
        assert resp.status_code == 200
        return resp.headers["x-run-id"], await collect(resp)


async def test_dev_starts_everything_and_keeps_data_across_restarts(
    fake_provider: FakeProviderServer,
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="copilot-dev-")) / "data"
    ports = {n: free_port() for n in ("api", "temporal", "ui", "postgres", "redis")}
    env = _env(fake_provider)
    key = scenario(fake_provider, [{"text": "kept across restarts"}])

    dev = DevProcess(data_dir, ports, env)
    try:
        first_start = dev.wait_ready()
        output = dev.log.read_text()
        assert f"Temporal UI  http://127.0.0.1:{ports['ui']}" in output
        assert (data_dir / "secrets.env").exists()
        run_id, frames = await _chat(dev.url, {"message": key})
        chat_id = frames[0].data["data"]["chatId"]
        assert frames[-1].data["data"]["status"] == "completed"
        async with httpx.AsyncClient(timeout=10) as plain:
            ui = await plain.get(f"http://127.0.0.1:{ports['ui']}/")
        assert ui.status_code == 200
    finally:
        assert dev.stop() == 0
    for name, port in ports.items():
        assert port_free(port), f"{name} port {port} still held after Ctrl-C"

    dev = DevProcess(data_dir, ports, env)
    try:
        second_start = dev.wait_ready()
        async with httpx.AsyncClient(base_url=dev.url, timeout=30) as client:
            chat = (await client.get(f"/api/copilot/chats/{chat_id}")).json()
            assert [m["content"] for m in chat["messages"]] == [key, "kept across restarts"]
            async with client.stream("GET", f"/api/copilot/runs/{run_id}/events") as resp:
                replay = await collect(resp)
        assert [f.data for f in replay] == [f.data for f in frames]  # Redis AOF kept the log
        temporal = await Client.connect(f"127.0.0.1:{ports['temporal']}")
        described = await temporal.get_workflow_handle(run_id).describe()
        assert described.status is not None
        assert described.status.name == "COMPLETED"  # Temporal history kept
    finally:
        assert dev.stop() == 0
    print(f"\ncopilot dev start-up: empty folder {first_start:.1f}s, existing {second_start:.1f}s")


def test_dev_refuses_a_taken_port_with_a_clear_message() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "copilot.cli", "dev", "--port", str(port),
             "--data-dir", tempfile.mkdtemp()],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"Port {port} (API) is already in use" in result.stderr


@pytest.mark.parametrize("command", ["dev", "api", "worker", "migrate"])
def test_every_command_has_help(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "copilot.cli", command, "--help"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "usage: copilot" in result.stdout


def test_api_outside_dev_refuses_to_start_without_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ENCRYPTION_KEY",)}
    env.update({"DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "REDIS_URL": "redis://x",
                "TEMPORAL_ADDRESS": "127.0.0.1:1"})  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "api", "--port", str(free_port())],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ENCRYPTION_KEY is not set" in result.stderr
