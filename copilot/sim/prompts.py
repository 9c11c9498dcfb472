"""System prompts for Sim's copilot modes, one Markdown file per mode in ``prompts/``.

Each file's first line is ``<!-- prompt-version: N (sim <commit>) -->``; the version travels with
the text so a run can record which prompt it used. ``build`` is Sim's name for ``agent``;
``chat`` has no Sim prompt (it offers no tools).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

PROMPT_FILES = {"ask": "ask.md", "plan": "plan.md", "agent": "agent.md", "build": "agent.md"}

_VERSION_LINE = re.compile(r"<!--\s*prompt-version:\s*(?P<version>[^>]*?)\s*-->")


@cache
def _load(filename: str) -> tuple[str, str]:
    raw = files("copilot.sim").joinpath("prompts").joinpath(filename).read_text(encoding="utf-8")
    first, _, body = raw.partition("\n")
    match = _VERSION_LINE.fullmatch(first.strip())
    if match is None:
        raise ValueError(f"prompt {filename} lacks its first line '<!-- prompt-version: ... -->'")
    return body.strip() + "\n", match["version"]


def prompt_for_mode(mode: str) -> tuple[str, str]:
    """(system prompt text, its version, e.g. ``"1 (sim 190f12fd77)"``) for a Sim mode."""
    try:
        filename = PROMPT_FILES[mode]
    except KeyError:
        raise ValueError(
            f"no Sim prompt for mode {mode!r}; modes with one: {', '.join(PROMPT_FILES)}"
        ) from None
    return _load(filename)
