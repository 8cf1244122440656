"""The command line: parse arguments, call the library, print. One module per command; the
printing (`error:`/`hint:` lines, ``--json``) lives in ``output.py`` alone.

    base.py      the typer app, the options given before the command, ``command`` (a command whose
                 ImagesmithErrors become one report and an exit code), ``COMMANDS`` (the command
                 names in `--help`'s order) and ``load_commands`` (imports and registers them)
    entry.py     ``main``: runs a command line; the console script and ``python -m imagesmith`` call
                 it through this package's ``main``, which also reports a Ctrl-C during its import
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

import _thread
import functools
import sys
import time

__all__ = ["COMMANDS", "JSON_FORMAT", "app", "main"]


# A Ctrl-C that Python could not raise where it came, sent again (``_interrupt_again``)
_SENT_AGAIN: list[bool] = []


class Terminated(BaseException):
    """SIGTERM, as an exception (like KeyboardInterrupt for SIGINT): ``finally`` blocks run, so
    signoff removes its containers, instead of the process ending on the spot."""


def _raise_terminated(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """The console script (pyproject.toml's ``[project.scripts]``) and ``python -m imagesmith``:
    ``entry.main``, imported here, so that Ctrl-C while the CLI's modules import (typer and
    click: most of a start-up, ~0.3 s) ends as one later does, ``error: interrupted`` and exit
    130, not with a KeyboardInterrupt traceback. For that this package's own import loads nothing
    (``output`` is imported after the Ctrl-C: it loads no typer). SIGTERM likewise: its handler
    comes before that import (it killed the process without a word before ``entry`` set it)."""
    previous = sys.unraisablehook
    sys.unraisablehook = functools.partial(_interrupt_again, previous)
    previous_term = None
    try:
        import signal  # here, where a Ctrl-C during its import is caught

        try:
            previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
        except ValueError:  # not the main thread (an embedding program): leave SIGTERM alone
            pass
        from .entry import main as run

        code = run(argv)
        if _SENT_AGAIN:  # it lands here at the latest (in ms), not after main returned
            try:
                time.sleep(0.1)
            except KeyboardInterrupt:
                if code != 130:
                    raise
                # the command reported an interrupt already (the first one): not a second line
        return code
    except KeyboardInterrupt:
        from .output import stopped

        stopped("interrupted")
        return 130
    except Terminated:
        from .output import stopped

        stopped("terminated")
        return 143
    finally:
        sys.unraisablehook = previous
        _SENT_AGAIN.clear()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)  # bound by the import that set it


def _interrupt_again(previous, unraisable) -> None:
    """A Ctrl-C that came while Python ran code that cannot raise (the import system's weakref
    callbacks, a ``__del__``) was printed as "Exception ignored in ...", a KeyboardInterrupt
    traceback, and the command went on: it is sent again, from a thread, so that it is raised
    in the command's code (raised in this hook, it would be ignored in turn)."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        _SENT_AGAIN.append(True)
        _thread.start_new_thread(_thread.interrupt_main, ())
    else:
        previous(unraisable)


def __getattr__(name: str):
    """``app`` with every command registered (in `imagesmith --help`'s order), ``COMMANDS`` and
    ``JSON_FORMAT``, loaded when asked. ``main`` registers only the command it runs: importing the
    other thirteen and building their options would be most of a no-op `imagesmith lock`'s time
    (bench/README.md)."""
    if name == "app":
        from .base import COMMANDS, load_commands

        return load_commands(COMMANDS)
    if name == "COMMANDS":
        from .base import COMMANDS

        return COMMANDS
    if name == "JSON_FORMAT":
        from .output import JSON_FORMAT

        return JSON_FORMAT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
