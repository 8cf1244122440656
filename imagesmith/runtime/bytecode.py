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

A source that is not valid Python for the venv's interpreter (torch ships
``torch/testing/_internal/py312_intrinsics.py``, Python 3.12 syntax, in its 3.11 wheel) is left
without bytecode, as pip and uv install it, and named on stderr; importing it would fail with or
without a ``.pyc``. Any other failure (a file that cannot be read or written) fails the step.
"""

from __future__ import annotations

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
    """What is left alone (``search(path)`` true = skip, as ``compileall``'s ``rx``): tests, and
    sources whose bytecode a RECORD lists."""

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


def sources(lib: str, skip: Skip) -> list:
    """The ``.py`` files under ``lib`` to compile, sorted (``__pycache__`` folders and symlinked
    folders not entered, as ``compileall.compile_dir``)."""
    out = []
    for root, dirs, files in os.walk(lib):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.endswith(".py") and os.path.isfile(path) and not skip.search(path):
                out.append(path)
    return out


def compile_one(path: str) -> tuple:
    """``("ok", path)``; ``("invalid", path)`` when the source is not valid Python for this
    interpreter (no bytecode written); ``("failed", path, why)`` otherwise."""
    try:
        py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as exc:
        if isinstance(exc.exc_value, (SyntaxError, ValueError)):  # ValueError: a bad encoding or a NUL byte
            return ("invalid", path)
        return ("failed", path, exc.msg.strip())
    except OSError as exc:
        return ("failed", path, str(exc))
    return ("ok", path)


def compile_lib(lib: str, workers: int = 0) -> tuple:
    """Compile ``lib`` as the module docstring says (``workers`` processes, 0: one per CPU):
    (the sources left without bytecode as not valid Python here, the failures as ``path: why``)."""
    paths = sources(lib, Skip(recorded_files(lib)))
    workers = workers or len(os.sched_getaffinity(0)) or 1
    if workers > 1 and len(paths) > 1:
        from concurrent.futures import ProcessPoolExecutor  # here: importing the module starts no multiprocessing

        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(compile_one, paths, chunksize=64))
    else:
        results = [compile_one(path) for path in paths]
    invalid = [r[1] for r in results if r[0] == "invalid"]
    failed = [f"{r[1]}: {r[2]}" for r in results if r[0] == "failed"]
    return invalid, failed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m imagesmith_runtime.bytecode LIB_DIR\n")
        return 2
    invalid, failed = compile_lib(args[0])
    if invalid:
        shown = ", ".join(invalid[:3]) + (" and %d more" % (len(invalid) - 3) if len(invalid) > 3 else "")
        sys.stderr.write(
            "imagesmith: bytecode: %d source(s) not valid Python %d.%d, left without bytecode (as pip and uv "
            "install them): %s\n" % (len(invalid), sys.version_info[0], sys.version_info[1], shown)
        )
    for line in failed:
        sys.stderr.write("imagesmith: bytecode: could not compile %s\n" % line)
    return 1 if failed else 0


if __name__ == "__main__":
    # the module under its own name, not __main__: compile_one is pickled for the worker processes
    from .bytecode import main as _main

    sys.exit(_main())
