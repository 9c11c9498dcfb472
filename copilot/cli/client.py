"""The terminal client's commands: ``copilot chat``, ``copilot runs ...``, ``copilot keys ...``.

They talk to a running server over its public API (``copilot.client``). What a script reads
stays plain: the streamed answer alone on stdout, tool calls and prompts on stderr, lists as
one line a row (or ``--json``) when stdout is not a terminal; a terminal gets tables.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from copilot.cli.output import console, reports_errors
from copilot.client import DEFAULT_URL, Api, ChatSession, ClientError

runs_app = typer.Typer(
    help="List your runs or show one.", no_args_is_help=True, add_completion=False
)
keys_app = typer.Typer(
    help="Your own provider API keys (stored encrypted).",
    no_args_is_help=True,
    add_completion=False,
)

# The options every client command takes, with the environment variable that sets each.
UrlOpt = Annotated[str, typer.Option(envvar="COPILOT_URL", help="Server URL.")]
KeyOpt = Annotated[
    str | None,
    typer.Option(envvar="COPILOT_KEY", help="API key, sent as x-api-key.", show_default=False),
]
UserOpt = Annotated[
    str | None,
    typer.Option(
        envvar="COPILOT_USER",
        help="userId to act for (needed with admin and service keys).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's JSON answer.")]

_STATUS_STYLE = {"completed": "green", "failed": "red", "aborted": "yellow", "running": "cyan"}


def _emit_json(out: Console, data: Any) -> None:
    if out.is_terminal:
        out.print_json(data=data)
    else:  # byte-for-byte what scripts have parsed so far
        sys.stdout.write(json.dumps(data, indent=2) + "\n")


@reports_errors("copilot chat")
def chat(
    message: Annotated[
        str, typer.Argument(metavar="MESSAGE", help="The message to send.", show_default=False)
    ],
    chat: Annotated[
        str | None, typer.Option(help="Continue this chat id.", show_default=False)
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model, e.g. gpt-4o-mini, claude-sonnet-4, ollama:llama3.", show_default=False
        ),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Headless: wait for the end, print the JSON result.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Headless wait, in seconds.")] = 300,
    yes: Annotated[bool, typer.Option("--yes", help="Accept every tool confirmation.")] = False,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = None,
    user: UserOpt = None,
) -> None:
    """Chat with a running server: stream the answer, confirm tools at the prompt.

    The answer alone goes to stdout; tool calls, confirmation prompts and notices go to stderr.
    A dropped connection is resumed where it broke. Exit code 0 when the run completed, 1 when
    it ended otherwise (failed, aborted), 2 when the server refused or could not be reached.
    """
    body: dict[str, Any] = {"message": message}
    for field, value in (("model", model), ("chatId", chat), ("userId", user)):
        if value:
            body[field] = value
    with Api(url, key, user) as api:
        if json_:
            body["timeout"] = int(timeout * 1000)
            try:
                resp = api.http.post("/api/v1/copilot/chat", json=body, timeout=timeout + 10)
            except httpx.HTTPError as exc:
                raise api.unreachable(exc) from None
            try:
                result = resp.json()
            except ValueError:  # not the server: a proxy's error page
                raise ClientError(f"{resp.status_code}: {resp.text[:200]}") from None
            _emit_json(console(), result)
            if resp.status_code != 200 or not result.get("success"):
                raise typer.Exit(1)
            return
        session = ChatSession(api, out=sys.stdout, err=sys.stderr, ask=_ask, auto=yes)
        code = session.run(body)
    if code:
        raise typer.Exit(code)


def _ask(question: str) -> str:
    """Prompt on stderr, so stdout carries only the answer (pipe-friendly)."""
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline()


@runs_app.command("list")
@reports_errors("copilot runs list")
def runs_list(
    chat: Annotated[
        str | None, typer.Option(help="Only this chat's runs.", show_default=False)
    ] = None,
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = None,
    user: UserOpt = None,
) -> None:
    """Your runs, newest first: id, status, model, start time."""
    with Api(url, key, user) as api:
        params = api.params()
        if chat:
            params["chatId"] = chat
        answer = api.call("GET", "/api/copilot/runs", params=params)
    runs = answer["runs"]
    out = console()
    if json_:
        _emit_json(out, answer)
    elif out.is_terminal:
        table = Table("run", "status", "model", "created", box=None, header_style="bold")
        for run in runs:
            status = Text(run["status"], style=_STATUS_STYLE.get(run["status"], ""))
            table.add_row(run["runId"], status, run["model"], run["createdAt"])
        out.print(table if runs else "no runs yet")
    else:
        for run in runs:
            sys.stdout.write(
                f"{run['runId']}  {run['status']:<10} {run['model']:<20} {run['createdAt']}\n"
            )


@runs_app.command("show")
@reports_errors("copilot runs show")
def runs_show(
    run_id: Annotated[
        str, typer.Argument(metavar="RUN_ID", help="The run id (`run_...`).", show_default=False)
    ],
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = None,
    user: UserOpt = None,
) -> None:
    """One run's snapshot as JSON: status, content so far, tool calls, pending decisions."""
    with Api(url, key, user) as api:
        snap = api.call("GET", f"/api/copilot/runs/{run_id}", params=api.params())
    snap.pop("streamToken", None)  # a credential; it has no use in a terminal
    _emit_json(console(), snap)


ProviderArg = Annotated[
    str,
    typer.Argument(
        metavar="PROVIDER", help="The provider: anthropic, openai or ollama.", show_default=False
    ),
]


@keys_app.command("set")
@reports_errors("copilot keys set")
def keys_set(
    provider: ProviderArg,
    value: Annotated[
        str | None,
        typer.Option(
            envvar="COPILOT_PROVIDER_KEY",
            help="The key (default: a prompt that does not echo it).",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="A custom provider base URL.", show_default=False)
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = None,
    user: UserOpt = None,
) -> None:
    """Store your key for a provider; your runs use it before the server's own."""
    secret = value or _read_secret()
    body: dict[str, Any] = {"apiKey": secret}
    if base_url:
        body["baseUrl"] = base_url
    with Api(url, key, user) as api:
        if api.user:
            body["userId"] = api.user
        api.call("PUT", f"/api/copilot/keys/{provider}", json=body)
    console().print(f"stored the {provider} key")


def _read_secret() -> str:
    # On a terminal the key is not echoed; from a pipe (`pass show x | copilot keys set ...`)
    # it is the first line, read without a prompt.
    if sys.stdin.isatty():
        secret = str(typer.prompt("API key", hide_input=True, err=True))
    else:
        secret = sys.stdin.readline().strip()
    if not secret:
        raise ClientError("no key given: pass --value, set COPILOT_PROVIDER_KEY or pipe it in")
    return secret


@keys_app.command("list")
@reports_errors("copilot keys list")
def keys_list(
    json_: JsonOpt = False,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = None,
    user: UserOpt = None,
) -> None:
    """Your stored keys: provider, last 4 characters, last update (never the key)."""
    with Api(url, key, user) as api:
        keys = api.call("GET", "/api/copilot/keys", params=api.params())
    out = console()
    rows = keys.get("keys", [])
    if json_:
        _emit_json(out, keys)
    elif out.is_terminal:
        table = Table("provider", "key", "updated", box=None, header_style="bold")
        for row in rows:
            table.add_row(row["provider"], f"…{row['last4']}", str(row.get("updatedAt")))
        out.print(table if rows else "no keys stored: the server's own keys apply")
    else:
        for row in rows:
            sys.stdout.write(f"{row['provider']:<12} …{row['last4']}  {row.get('updatedAt')}\n")


@keys_app.command("delete")
@reports_errors("copilot keys delete")
def keys_delete(
    provider: ProviderArg,
    url: UrlOpt = DEFAULT_URL,
    key: KeyOpt = None,
    user: UserOpt = None,
) -> None:
    """Delete your key for a provider; the server's own key applies again."""
    with Api(url, key, user) as api:
        api.call("DELETE", f"/api/copilot/keys/{provider}", params=api.params())
    console().print(f"deleted the {provider} key")
