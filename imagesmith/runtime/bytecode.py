"""The venv's bytecode, compiled once at build time without touching what a wheel installed.

Standard library only (part of the ``imagesmith-runtime`` wheel), run by the Dockerfile's install
step with the venv's Python::

    python -m imagesmith_runtime.bytecode LIB_DIR

Every ``.py`` file under LIB_DIR is compiled to its ``__pycache__`` file (``unchecked-hash``: no
timestamps, so the layer is the same on every build; in parallel), except:

- files under a ``test/`` or ``tests/`` folder: the distributions' own test suites, never imported
  by the app (imported anyway, they are compiled in memory);
- files whose ``.pyc`` a distribution's RECORD lists: the wheel shipped that bytecode, and the
  image keeps the wheel's bytes as installed (``verify`` checks every RECORD hash).

Everything else is compiled even where a ``.pyc`` already exists (as ``compileall -f``): the
runtime's ``.pth`` runs at each interpreter start and may have written timestamped bytecode.
"""

from __future__ import annotations

import compileall
import csv
import importlib.util
import os
import py_compile
import re
import sys

TESTS_RE = r"/tests?/"


def recorded_files(lib: str) -> frozenset:
    """The absolute paths every ``*.dist-info/RECORD`` under ``lib`` lists."""
    out: set = set()
    for root, dirs, _files in os.walk(lib):
        dirs.sort()
        for d in dirs:
            if not d.endswith(".dist-info"):
                continue
            record = os.path.join(root, d, "RECORD")
            try:
                with open(record, encoding="utf-8", newline="") as fh:
                    rows = [row[0] for row in csv.reader(fh) if row]
            except OSError:
                continue
            out.update(os.path.normpath(os.path.join(root, rel)) for rel in rows)
    return frozenset(out)


class Skip:
    """What ``compileall`` leaves alone (its ``rx``: ``search(path)`` true = skip): tests, and
    sources whose bytecode a RECORD lists. Picklable, for its worker processes."""

    def __init__(self, recorded: frozenset) -> None:
        self.recorded = recorded
        self.tests = re.compile(TESTS_RE)

    def search(self, path: str) -> bool:
        if self.tests.search(path):
            return True
        if not path.endswith(".py"):
            return False
        try:
            return os.path.normpath(importlib.util.cache_from_source(path)) in self.recorded
        except (NotImplementedError, ValueError):
            return False


def compile_lib(lib: str, workers: int = 0) -> bool:
    """Compile ``lib`` as the module docstring says; False when a file failed to compile."""
    return bool(
        compileall.compile_dir(
            lib,
            quiet=1,
            force=True,
            rx=Skip(recorded_files(lib)),
            workers=workers,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m imagesmith_runtime.bytecode LIB_DIR\n")
        return 2
    return 0 if compile_lib(args[0]) else 1


if __name__ == "__main__":
    # the module under its own name, not __main__: its Skip is pickled for the worker processes
    from .bytecode import main as _main

    sys.exit(_main())
