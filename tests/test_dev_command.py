"""`copilot dev` as a user runs it: from an empty data folder, then again on the same folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
from temporalio.client import Client

from copilot.cli.supervise import RestartPolicy
from copilot.embedded import free_port, port_free
from copilot.events.fold import fold_events
from tests.conftest import ARTIFACTS, scenario
from tests.fakes.provider import FakeProviderServer
from tests.sse import Frame, collect, iter_frames

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


def _app_process(dev: DevProcess, command: str) -> psutil.Process:
    """The dev process's child running ``copilot.cli <command>`` (worker or api)."""
    for child in psutil.Process(dev.proc.pid).children():
        if child.cmdline()[1:4] == ["-m", "copilot.cli", command]:
            return child
    raise AssertionError(f"no {command} child of copilot dev")


async def _poll_health(url: str, answers: list[int | str]) -> None:
    """Record every /api/health answer until cancelled."""
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            try:
                answers.append((await http.get(f"{url}/api/health")).status_code)
            except httpx.HTTPError as exc:
                answers.append(repr(exc))
            await asyncio.sleep(0.1)  # the polling interval, not a synchronisation


async def _rejoin(
    dev: DevProcess, http: httpx.AsyncClient, run_id: str, frames: list[Frame]
) -> None:
    """Follow the run from the last event seen until ``done``, as EventSource does."""
    while not frames or frames[-1].data["type"] != "done":
        assert dev.proc.poll() is None, f"copilot dev exited:\n{dev.log.read_text()[-3000:]}"
        last = str(frames[-1].id or 0) if frames else "0"
        with contextlib.suppress(httpx.HTTPError):
            async with http.stream("GET", f"/api/copilot/runs/{run_id}/events",
                                   headers={"Last-Event-ID": last}) as resp:  # fmt: skip
                async for frame in iter_frames(resp):
                    frames.append(frame)
                    if frame.data["type"] == "done":
                        return
        await asyncio.sleep(0.2)  # EventSource's reconnection delay


async def _chat_killing_the_worker(
    dev: DevProcess, key: str, worker: psutil.Process
) -> list[Frame]:
    """Start a chat, SIGKILL the worker at its 8th event, and follow the run to ``done``."""
    frames: list[Frame] = []
    async with httpx.AsyncClient(base_url=dev.url, timeout=60) as http:
        run_id = ""
        with contextlib.suppress(httpx.HTTPError):  # a cut stream is rejoined below
            async with http.stream("POST", "/api/copilot/chat", json={"message": key}) as resp:
                assert resp.status_code == 200
                run_id = resp.headers["x-run-id"]
                async for frame in iter_frames(resp):
                    frames.append(frame)
                    if len(frames) == 8:
                        worker.kill()
                    if frame.data["type"] == "done":
                        break
        assert run_id
        await asyncio.wait_for(_rejoin(dev, http, run_id, frames), 90)
    assert not worker.is_running(), "the worker was not killed mid-stream"
    return frames


async def test_dev_restarts_a_killed_worker_and_the_run_completes(
    fake_provider: FakeProviderServer,
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="copilot-dev-")) / "data"
    ports = {n: free_port() for n in ("api", "temporal", "ui", "postgres", "redis")}
    words = [f"w{i} " for i in range(60)]
    # 60 deltas 40 ms apart: the worker dies mid-answer; its retry streams the whole turn again.
    key = scenario(fake_provider, [{"chunks": words, "delay_ms": 40}, {"chunks": words}])
    dev = DevProcess(data_dir, ports, _env(fake_provider))
    try:
        dev.wait_ready()
        worker, api = _app_process(dev, "worker"), _app_process(dev, "api")
        health: list[int | str] = []
        poller = asyncio.create_task(_poll_health(dev.url, health))
        try:
            frames = await _chat_killing_the_worker(dev, key, worker)
        finally:
            poller.cancel()
        folded = fold_events(f.data for f in frames)
        assert (folded.status, folded.content) == ("completed", "".join(words))
        assert "turn_reset" in [f.data["type"] for f in frames]  # the retry ran on a new worker
        assert health, "the health poller never got an answer"
        assert set(health) == {200}, [h for h in health if h != 200]
        assert dev.proc.poll() is None
        assert api.is_running()  # only the worker was restarted
        assert _app_process(dev, "worker").pid != worker.pid
        output = dev.log.read_text()
        assert "worker exited with signal 9 (SIGKILL); restarting in 1.0s (restart 1 of 4" in output
        assert "worker restarted (pid" in output
        assert (data_dir / "logs" / "worker.log").read_text()
    finally:
        assert dev.stop() == 0
    for name, port in ports.items():
        assert port_free(port), f"{name} port {port} still held after Ctrl-C"


def test_restart_policy_backs_off_exponentially_then_gives_up_on_a_crash_loop() -> None:
    now = 0.0
    policy = RestartPolicy(max_crashes=5, window=60, first_delay=1, max_delay=16,
                           clock=lambda: now)  # fmt: skip
    decisions = []
    for _ in range(5):
        decisions.append(policy.crashed())
        now += 5
    assert [d.give_up for d in decisions] == [False, False, False, False, True]
    assert [d.delay for d in decisions[:4]] == [1.0, 2.0, 4.0, 8.0]
    assert [(d.crashes, d.allowed) for d in decisions[:2]] == [(1, 4), (2, 4)]


def test_restart_policy_forgets_crashes_older_than_its_window() -> None:
    now = 0.0
    policy = RestartPolicy(max_crashes=3, window=60, clock=lambda: now)
    assert [policy.crashed().delay, policy.crashed().delay] == [1.0, 2.0]
    now = 61.0  # both crashes are now outside the window: the child had stayed up
    first_again = policy.crashed()
    assert (first_again.give_up, first_again.delay, first_again.crashes) == (False, 1.0, 1)
    for _ in range(10):  # one crash a minute and more is not a loop
        now += 61
        assert not policy.crashed().give_up


def test_restart_policy_caps_its_delay() -> None:
    policy = RestartPolicy(max_crashes=10, first_delay=1, max_delay=4, clock=lambda: 0.0)
    assert [policy.crashed().delay for _ in range(5)] == [1.0, 2.0, 4.0, 4.0, 4.0]


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


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "without COPILOT_API_KEY"), ("x", "shorter than 32 characters")],
    ids=["dev-mode", "short-key"],
)
def test_api_beyond_loopback_refuses_dev_mode_and_short_admin_keys(
    key: str | None, message: str
) -> None:
    """Checked before anything binds: no socket is opened on a non-loopback address."""
    env = {k: v for k, v in os.environ.items() if k != "COPILOT_API_KEY"}
    if key is not None:
        env["COPILOT_API_KEY"] = key
    result = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "api", "--host", "0.0.0.0",
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
