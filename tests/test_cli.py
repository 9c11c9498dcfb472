"""The ``copilot`` command line: its tree, help, usage errors, exit codes (no services needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from copilot.cli import app, main
from copilot.embedded import free_port

# Every command and its options, by name: README.md, docs/, docker-compose.yml, the Dockerfile,
# the Makefile and operators' scripts use them, so a rename is a breaking change.
COMMANDS = {
    "dev": {"--port", "--data-dir", "--temporal-port", "--temporal-ui-port", "--postgres-port",
            "--redis-port", "--no-ui"},
    "api": {"--host", "--port"},
    "worker": set(),
    "migrate": set(),
    "rotate-keys": {"--dry-run"},
    "chat": {"--chat", "--model", "--json", "--timeout", "--yes", "--url", "--key", "--user"},
    "runs list": {"--chat", "--json", "--url", "--key", "--user"},
    "runs show": {"--url", "--key", "--user"},
    "keys set": {"--value", "--base-url", "--url", "--key", "--user"},
    "keys list": {"--json", "--url", "--key", "--user"},
    "keys delete": {"--url", "--key", "--user"},
}  # fmt: skip


def _leaves(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """The runnable commands under ``command``, by the words that name them."""
    children = getattr(command, "commands", None)
    if not children:
        return {" ".join(path): command}
    found: dict[str, Any] = {}
    for name, child in children.items():
        found.update(_leaves(child, (*path, name)))
    return found


def test_the_tree_keeps_every_command_and_option_name() -> None:
    leaves = _leaves(typer.main.get_command(app))
    assert set(leaves) == set(COMMANDS)
    for name, command in leaves.items():
        options = {opt for p in command.params for opt in p.opts if opt.startswith("--")}
        assert options - {"--help"} == COMMANDS[name], name


@pytest.mark.parametrize("path", ["", "runs", "keys", *COMMANDS])
def test_every_command_has_help(path: str) -> None:
    words = path.split()
    result = CliRunner().invoke(app, [*words, "--help"], prog_name="copilot")
    assert result.exit_code == 0, result.output
    assert f"Usage: copilot {path}".rstrip() in result.output
    for option in COMMANDS.get(path, ()):
        assert option in result.output


def test_help_names_what_each_command_needs() -> None:
    def help_of(*words: str) -> str:
        return CliRunner().invoke(app, [*words, "--help"], prog_name="copilot").output

    assert "DATABASE_URL" in help_of("api")
    assert "ENCRYPTION_KEYS_OLD" in help_of("rotate-keys")
    assert "COPILOT_URL" in help_of("chat")  # the options' environment variables are shown
    assert "COPILOT_PROVIDER_KEY" in help_of("keys", "set")
    assert "7233" in help_of("dev")  # defaults too


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dev", "--bogus"], "No such option: --bogus"),
        (["dev", "--port", "eighty"], "Invalid value for '--port'"),
        (["deev"], "No such command 'deev'"),
        (["runs", "show"], "Missing argument 'RUN_ID'"),
        (["keys", "set"], "Missing argument 'PROVIDER'"),
        (["runs", "list", "extra"], "unexpected extra argument"),
    ],
)
def test_a_usage_error_says_what_is_wrong_and_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Try 'copilot" in err
    assert "--help' for help." in err


def test_no_command_shows_the_commands_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in ("dev", "api", "worker", "migrate", "rotate-keys", "chat", "runs", "keys"):
        assert f" {name} " in out


def test_a_setting_to_fix_is_one_plain_line_and_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(os.path.dirname(__file__))  # no .env here to supply one
    assert main(["migrate"]) == 2
    assert main(["rotate-keys", "--dry-run"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("copilot migrate: DATABASE_URL is not set")
    assert err[1].startswith("copilot rotate-keys: DATABASE_URL is not set")


@pytest.mark.parametrize(
    ("command", "args"),
    [("runs list", []), ("runs show", ["run_x"]), ("keys list", []), ("keys delete", ["openai"]),
     ("chat", ["hello"]), ("chat", ["hello", "--json"])],
)  # fmt: skip
def test_an_unreachable_server_is_exit_2_with_what_to_do(
    command: str, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    assert main([*command.split(), *args, "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"copilot {command}: ")
    assert f"cannot reach the server at {url}" in err
    assert "copilot dev" in err
    assert "COPILOT_URL" in err


def test_keys_set_reads_a_piped_key_and_refuses_an_empty_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    empty = CliRunner().invoke(app, ["keys", "set", "openai", "--url", url], input="\n",
                               prog_name="copilot")  # fmt: skip
    assert empty.exit_code == 2
    assert "no key given: pass --value, set COPILOT_PROVIDER_KEY" in empty.output
    piped = CliRunner().invoke(app, ["keys", "set", "openai", "--url", url], input="sk-1\n",
                               prog_name="copilot")  # fmt: skip
    assert piped.exit_code == 2  # read it, then found no server: the key itself was accepted
    assert "cannot reach the server" in piped.output


def test_the_console_script_entry_names_itself_copilot() -> None:
    """``python -m copilot.cli`` (how ``copilot dev`` starts its children) is the same program."""
    result = subprocess.run(
        [sys.executable, "-m", "copilot.cli", "worker", "--help"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "Usage: copilot worker" in result.stdout
