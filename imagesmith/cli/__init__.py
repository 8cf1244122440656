"""The command line: parse arguments, call the library, print. One module per command; the
printing (`error:`/`hint:` lines, ``--json``) lives in ``output.py`` alone.

    base.py      the typer app, the options given before the command, ``command`` (registers a
                 command; its ImagesmithErrors become one report and an exit code)
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

from . import build, diff, export, golden, init, inspect, lock, parity_of, prune, render, run, sign, signoff, verify
from .base import app, register
from .entry import main
from .output import JSON_FORMAT

__all__ = ["JSON_FORMAT", "app", "main"]

# the order `imagesmith --help` lists them in
register(
    init.init,
    lock.lock,
    render.render,
    build.build,
    verify.verify,
    inspect.inspect,
    diff.diff,
    parity_of.parity_of,
    run.run,
    golden.golden,
    signoff.signoff,
    sign.sign,
    prune.prune,
    export.export,
)
