"""The command line: parse arguments, call the library, print. One module per command; the
printing (`error:`/`hint:` lines, ``--json``) lives in ``output.py`` alone.

    base.py      the typer app, the options given before the command, ``command`` (a command whose
                 ImagesmithErrors become one report and an exit code), ``COMMANDS`` (the command
                 names in `--help`'s order) and ``load_commands`` (imports and registers them)
    entry.py     ``main``: the console script and ``python -m imagesmith``
    output.py    the one place that prints errors and JSON
    options.py   options several commands share; file arguments read from the project (-p)
    init.py, lock.py, render.py, build.py, verify.py, inspect.py, diff.py, parity_of.py,
    run.py, golden.py, signoff.py, sign.py, prune.py, export.py    one command each

Exit codes (a public contract, see docs/reference/cli.md): 0 success / check holds; 1 a check does not hold
(stale lock or Dockerfile, failed verification, parity differs); 2 usage, spec, lock, engine
or build errors; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM: raised as an exception in
the main thread, so cleanups run as they do for Ctrl-C). ``imagesmith run`` exits with the
container's own code, and with 125 for its own failures (as ``docker run`` does), so a
container's 2 is never mistaken for imagesmith's.

Output: results on stdout (``--json``: one JSON document with ``"imagesmith_json": 1``, also for
errors: ``{"error", "hint", "exit"}``); progress and ``error:``/``hint:`` lines on stderr, also
for command-line mistakes (no boxes, no traceback). ``-q`` silences progress, ``-v`` adds detail;
``-p``, ``-q``, ``-v`` and ``--json`` may also come before the command (the app's callback).
"""

from __future__ import annotations

from .base import COMMANDS, load_commands
from .entry import main
from .output import JSON_FORMAT

__all__ = ["COMMANDS", "JSON_FORMAT", "app", "main"]


def __getattr__(name: str):
    """``app`` with every command registered (in `imagesmith --help`'s order). ``main`` registers
    only the command it runs: importing the other thirteen and building their options would be
    most of a no-op `imagesmith lock`'s time (bench/README.md)."""
    if name == "app":
        return load_commands(COMMANDS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
