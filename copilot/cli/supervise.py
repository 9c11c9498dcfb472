"""``copilot dev``'s supervisor: keeps the worker and the API up, restarting them when they crash.

A crashed worker or API is started again after an exponential backoff; a crash loop (a bad
setting, a broken import) stops everything with the child's last lines and what to fix. The
embedded services are never restarted in place: their death stops ``copilot dev``.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from copilot.embedded import Child, Embedded, spawn

log = logging.getLogger("copilot")


@dataclass(frozen=True)
class RestartDecision:
    """What to do after one crash: restart after ``delay`` seconds, or give up."""

    give_up: bool
    delay: float
    crashes: int  # crashes within the window, this one included
    allowed: int  # restarts allowed within the window


class RestartPolicy:
    """Exponential backoff for a crashed child, and where crashing becomes a crash loop.

    ``max_crashes`` crashes within ``window`` seconds mean the child dies of something a restart
    will not fix (a bad setting, a broken import); restarting it forever would bury the cause
    in the log. Crashes older than the window are forgotten, so a child that stayed up starts
    again from ``first_delay``.
    """

    def __init__(
        self,
        *,
        max_crashes: int = 5,
        window: float = 60.0,
        first_delay: float = 1.0,
        max_delay: float = 16.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_crashes = max_crashes
        self.window = window
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._clock = clock
        self._crashes: deque[float] = deque()

    def crashed(self) -> RestartDecision:
        now = self._clock()
        self._crashes.append(now)
        while now - self._crashes[0] > self.window:
            self._crashes.popleft()
        count = len(self._crashes)
        allowed = self.max_crashes - 1
        if count > allowed:
            return RestartDecision(give_up=True, delay=0.0, crashes=count, allowed=allowed)
        delay = min(self.first_delay * 2 ** (count - 1), self.max_delay)
        return RestartDecision(give_up=False, delay=delay, crashes=count, allowed=allowed)


@dataclass
class Restartable:
    """The worker or the API under ``copilot dev``: started again when it crashes."""

    name: str
    start: Callable[[], Child]
    child: Child
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    restart_at: float | None = None  # set while a crashed child waits out its backoff


def start_app(env: dict[str, str], logs: Path, host: str, port: int) -> list[Restartable]:
    """Start the worker and the API, each with its output in the terminal and in ``logs``."""
    # `-m copilot.cli` rather than the `copilot` script: it runs this interpreter and this
    # checkout, even from a virtualenv that is not activated.
    cli = [sys.executable, "-m", "copilot.cli"]
    commands = {
        "worker": [*cli, "worker"],
        "api": [*cli, "api", "--port", str(port), "--host", host],
    }
    app = []
    for name, argv in commands.items():
        start = functools.partial(
            spawn, name, argv, log_path=logs / f"{name}.log", env=env, echo_output=True
        )
        app.append(Restartable(name, start, start()))
    return app


def _tend(app: Restartable, stopping: Callable[[], bool]) -> bool:
    """Restart a crashed child once its backoff is over; False when it is in a crash loop."""
    now = time.monotonic()
    if app.restart_at is not None:
        if now >= app.restart_at and not stopping():  # a Ctrl-C during the backoff wins
            app.child = app.start()
            app.restart_at = None
            log.warning("%s restarted (pid %d)", app.name, app.child.proc.pid)
        return True
    if app.child.alive():
        return True
    app.child.drain()  # its last lines (a traceback) into its log before anyone reads it
    decision = app.policy.crashed()
    if decision.give_up:
        _report_crash_loop(app, decision)
        return False
    log.warning(
        "%s %s; restarting in %.1fs (restart %d of %d within %.0fs)",
        app.name,
        app.child.exit_description(),
        decision.delay,
        decision.crashes,
        decision.allowed,
        app.policy.window,
    )
    app.restart_at = now + decision.delay
    return True


def _report_crash_loop(app: Restartable, decision: RestartDecision) -> None:
    log.error(
        "%s %s: %d crashes within %.0fs, a crash loop that restarting will not fix, so "
        "copilot dev gives up and stops everything.\nIts output is in %s; the last lines:\n"
        "%s\nFix what they show (often a setting in .env or the environment), then run "
        "`copilot dev` again.",
        app.name,
        app.child.exit_description(),
        decision.crashes,
        app.policy.window,
        app.child.log_path,
        app.child.log_tail(20),
    )


def _report_service_death(service: Child, data_dir: Path) -> None:
    # Restarting Temporal, PostgreSQL or Redis in place (stale pid files, recovery, clients
    # reconnecting) is not worth its risk in a dev server; a clear stop is.
    log.error(
        "%s (embedded) %s. copilot dev restarts only the worker and the API, not its embedded "
        "services, so it stops everything.\nIts log is %s; the last lines:\n%s\n"
        "Run `copilot dev` again: the data in %s is kept.",
        service.name,
        service.exit_description(),
        service.log_path,
        service.log_tail(20),
        data_dir,
    )


def supervise(app: list[Restartable], emb: Embedded, stopping: Callable[[], bool]) -> int:
    """Keep the worker and the API up until Ctrl-C or SIGTERM; 1 if that cannot be done."""
    while not stopping():
        dead = emb.dead()
        if dead:
            _report_service_death(dead[0], emb.data_dir)
            return 1
        if not all(_tend(child, stopping) for child in app):
            return 1
        time.sleep(0.25)  # supervising children; a signal sets `stopping`
    return 0
