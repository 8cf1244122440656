"""How BuildKit's log reaches a person: ``build --progress``.

- ``plain`` (CI logs; ``auto`` off a terminal): BuildKit's plain log, streamed as it comes (a long
  step is never silent), each line labelled with its step (``[shared 2/4]``) so interleaved
  steps stay readable, and each step's end with its time (``done in 12.3s``) or ``cached``.
- ``tty`` (``auto`` on a terminal): BuildKit's own live display, untouched.
- ``quiet``: nothing from BuildKit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

_STEP = re.compile(r"^#(\d+) (.*)$")
_TITLE = re.compile(r"^(\[[^\]]+\])\s*(.*)$")
_END = re.compile(r"^(DONE [\d.]+s|CACHED|ERROR:.*|CANCELED.*)$")


@dataclass
class PlainLog:
    """Labels BuildKit's plain log line by line; ``echo`` takes one line of it."""

    write: Callable[[str], None]
    width: int = 72
    _labels: dict[str, str] = field(default_factory=dict)

    def echo(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        m = _STEP.match(line)
        if not m:
            self.write(line)
            return
        step, text = m.groups()
        if step not in self._labels:
            title = _TITLE.match(text)
            self._labels[step] = title.group(1) if title else f"#{step}"
            self.write(f"==> {title.group(1)} {title.group(2)[: self.width]}".rstrip() if title else line)
            return
        label = self._labels[step]
        end = _END.match(text)
        if end:
            word = end.group(1)
            self.write(
                f"    {label} "
                + (f"done in {word[5:]}" if word.startswith("DONE") else word.lower() if word in ("CACHED",) else word)
            )
        else:
            self.write(f"    {label} | {text}")

    def close(self) -> None:
        pass


class _Silent:
    echo = None

    def close(self) -> None:
        pass


def build_log(mode: str, write: Callable[[str], None]):
    """The log sink for a ``--progress`` mode (auto already resolved): an object with ``echo``
    (a line callback, or None to show nothing) and ``close()``. ``tty`` shows nothing through it:
    BuildKit writes to the terminal itself (see ``build_project(passthrough=True)``)."""
    if mode == "plain":
        return PlainLog(write)
    return _Silent()
