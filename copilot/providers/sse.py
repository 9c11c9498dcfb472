"""An incremental Server-Sent Events decoder (the WHATWG rules), for upstream streams.

Bytes arrive in chunks that may split a line, a multi-byte character or a ``\\r\\n`` pair
anywhere; ``feed`` keeps the unfinished tail and returns only complete messages. A message is
dispatched on a blank line; ``data:`` lines join with ``\\n``; ``:`` lines are comments (pings);
``event:`` and ``id:`` are kept but never needed by Sim-style readers, which look at ``data:``
only. ``close`` drops an unfinished message, as the standard says: a stream cut mid-message
must read as cut, never as a shorter message.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True)
class SseMessage:
    data: str
    event: str = "message"
    id: str | None = None


class SseDecoder:
    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._tail = ""  # an unfinished line
        self._cr = False  # the last chunk ended in "\r": a following "\n" belongs to it
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SseMessage]:
        text = self._text.decode(chunk)
        if not text:
            return []  # keep a pending "\r": its "\n" may still come
        if self._cr and text.startswith("\n"):
            text = text[1:]
        self._cr = text.endswith("\r")
        if "\r" in text:
            # Every line end ("\r\n", "\r", "\n") as "\n"; a "\r\n" cut between chunks is
            # handled by ``_cr`` above. Splitting with str methods, not a loop over characters:
            # this runs once per token of every provider stream (issue 17).
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if len(lines) == 1:
            self._tail += text
            return []
        lines[0] = self._tail + lines[0]
        self._tail = lines.pop()
        out: list[SseMessage] = []
        for line in lines:
            message = self._line(line)
            if message is not None:
                out.append(message)
        return out

    def close(self) -> list[SseMessage]:
        """The stream ended: an unfinished message is dropped (see the module docstring)."""
        self._tail = ""
        self._data = []
        self._event = ""
        return []

    def _line(self, line: str) -> SseMessage | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            message = SseMessage("\n".join(self._data), self._event or "message", self._id)
            self._data = []
            self._event = ""
            return message
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None
