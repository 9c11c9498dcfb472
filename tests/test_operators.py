"""Operators and humans: search attributes in Temporal, the terminal client, the web console."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from copilot.cli import app
from tests.conftest import ARTIFACTS, Services, Stack, running_stack, scenario
from tests.fakes.provider import FakeProviderServer
from tests.live import LiveRun

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
ANSI_STRIP = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def confirm_stack(services: Services, fake_provider: FakeProviderServer) -> Iterator[Stack]:
    with running_stack(services, fake_provider, TOOLS_REQUIRING_CONFIRMATION="echo") as running:
        yield running


async def _until_listed(temporal: Client, query: str) -> list[str]:
    """Visibility is eventually consistent: wait until the query finds something."""
    async with asyncio.timeout(30):
        while True:
            found = [wf.id async for wf in temporal.list_workflows(query)]
            if found:
                return found
            await asyncio.sleep(0.2)  # polling the visibility store; it has no change feed


async def test_runs_are_searchable_by_user_and_status(confirm_stack: Stack) -> None:
    user = f"ops-{uuid.uuid4().hex[:8]}"
    key = scenario(confirm_stack.provider, [
        {"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}]}, {"text": "ok"},
    ])  # fmt: skip
    temporal = await Client.connect(confirm_stack.services.temporal_address)
    async with httpx.AsyncClient(base_url=confirm_stack.api_url, timeout=30) as c:
        live = await LiveRun.start(c, {"message": key, "userId": user, "model": "gpt-4o-mini"})
        call = (await live.event("tool_status", status="awaiting_confirmation")).data
        waiting = await _until_listed(
            temporal, f'CopilotUserId="{user}" AND CopilotStatus="awaiting_confirmation"'
        )
        assert waiting == [live.run_id]
        described = await temporal.get_workflow_handle(live.run_id).describe()
        assert await described.static_summary() == "chat · openai/gpt-4o-mini · agent"
        details = await described.static_details()
        assert details is not None
        assert user in details
        resp = await c.post("/api/copilot/confirm",
                            json={"toolCallId": call["toolCallId"], "status": "accepted",
                                  "userId": user})  # fmt: skip
        assert resp.status_code == 200
        await live.finished()
    done = await _until_listed(
        temporal,
        f'CopilotUserId="{user}" AND CopilotStatus="completed" AND CopilotProvider="openai"',
    )
    assert done == [live.run_id]
    history = await temporal.get_workflow_handle(live.run_id).fetch_history()
    summaries = [
        json.loads(e.user_metadata.summary.data)
        for e in history.events
        if e.HasField("user_metadata") and e.user_metadata.HasField("summary")
    ]
    assert any("LLM turn 1 · gpt-4o-mini" in s for s in summaries), summaries
    assert any("tool echo · accepted by user" in s for s in summaries)


def test_terminal_client_streams_and_confirms_at_the_prompt(confirm_stack: Stack) -> None:
    key = scenario(confirm_stack.provider, [
        {"tool_calls": [{"name": "echo", "arguments": {"text": "from the terminal"}}]},
        {"chunks": ["The echo ", "came back."]},
    ])  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "chat", key, "--url", confirm_stack.api_url],
        input="y\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The echo came back."
    assert "Run tool echo with" in result.stderr
    assert '"echo": "from the terminal"' in result.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "runs", "list", "--url", confirm_stack.api_url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "completed" in listed.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "runs", "list", "--json",
         "--url", confirm_stack.api_url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    runs = json.loads(as_json.stdout)["runs"]
    assert "completed" in [run["status"] for run in runs]
    drawn = _in_a_terminal([sys.executable, "-m", "copilot.cli", "runs", "list",
                            "--url", confirm_stack.api_url])  # fmt: skip
    assert "\x1b[1m" in drawn  # styled: rich drew it for a person, not for a script
    table = ANSI_STRIP.sub("", drawn)
    header = next(line for line in table.splitlines() if "status" in line)
    assert header.split() == ["run", "status", "model", "created"]
    assert runs[0]["runId"] in table
    headless = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "chat", "plain question", "--json",
         "--url", confirm_stack.api_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert headless.returncode == 0, headless.stdout
    assert '"content": "Echo: plain question"' in headless.stdout


def _in_a_terminal(argv: list[str]) -> str:
    """Run a command with its stdout and stderr on a pseudo-terminal, as a shell runs it."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdout=terminal, stderr=terminal,
                                env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    finally:
        os.close(terminal)
    output = b""
    while True:  # read as it writes, or a full terminal buffer would block it
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command exited and closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert proc.wait(60) == 0, output
    return output.decode()


def test_terminal_client_stores_lists_and_deletes_provider_keys(confirm_stack: Stack) -> None:
    def copilot(*argv: str, stdin: str | None = None) -> str:
        result = CliRunner().invoke(app, [*argv, "--url", confirm_stack.api_url], input=stdin,
                                    prog_name="copilot")  # fmt: skip
        assert result.exit_code == 0, result.output
        return result.output

    assert copilot("keys", "set", "openai", "--value", "sk-cli-0123456789") == (
        "stored the openai key\n"
    )
    listed = copilot("keys", "list").splitlines()
    assert [line.split()[:2] for line in listed] == [["openai", "…6789"]]
    assert copilot("keys", "set", "openai", stdin="sk-piped-987654321\n")  # from a pipe
    stored = json.loads(copilot("keys", "list", "--json"))["keys"]
    assert [(k["provider"], k["last4"]) for k in stored] == [("openai", "4321")]
    assert copilot("keys", "delete", "openai") == "deleted the openai key\n"
    assert copilot("keys", "list") == ""


async def test_web_console_streams_confirms_and_survives_a_reload(confirm_stack: Stack) -> None:
    assert HAVE_CHROMIUM, "Debian's chromium is missing: `make test` installs it"
    from playwright.async_api import async_playwright

    words = [f"word{i} " for i in range(80)]
    key = scenario(confirm_stack.provider, [
        {"tool_calls": [{"name": "echo", "arguments": {"text": "console"}}]},
        {"chunks": words, "delay_ms": 40},
    ])  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = await browser.new_page()
        await page.goto(confirm_stack.api_url + "/")
        await page.fill("#message", f"console test {key}")
        await page.click("#send")
        card = page.locator(".tool .actions button[data-d=accepted]")
        await card.wait_for(state="visible", timeout=30_000)
        assert "console" in await page.locator(".tool pre").inner_text()
        await card.click()
        answer = page.locator(".msg.assistant").last
        await page.wait_for_function(
            "() => [...document.querySelectorAll('.msg.assistant')].some("
            "el => el.textContent.includes('word10 '))",
            timeout=30_000,
        )
        await page.reload()  # mid-answer
        await page.wait_for_function(
            "() => document.getElementById('status').textContent.startsWith('done')",
            timeout=60_000,
        )
        answer = page.locator(".msg.assistant").last
        text = await answer.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)
        await browser.close()
    assert text.strip() == "".join(words).strip()
