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

import csv
import importlib.util
import os
import py_compile
import re
import sys

TESTS_RE = re.compile(r"/tests?/")


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


def sources(lib: str) -> list:
    """The ``.py`` files under ``lib`` to compile, sorted: not in a test suite, not one whose
    bytecode a RECORD lists; ``__pycache__`` and symlinked folders not entered (as compileall)."""
    recorded = recorded_files(lib)
    out = []
    for root, dirs, files in os.walk(lib):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not os.path.islink(os.path.join(root, d)))
        for name in sorted(files):
            path = os.path.join(root, name)
            if not name.endswith(".py") or TESTS_RE.search(path) or not os.path.isfile(path):
                continue
            try:
                if os.path.normpath(importlib.util.cache_from_source(path)) in recorded:
                    continue
            except (NotImplementedError, ValueError):
                pass
            out.append(path)
    return out


def compile_one(path: str) -> bool:
    """One source to its ``__pycache__`` file, unchecked-hash (what ``compileall -f`` writes)."""
    try:
        py_compile.compile(path, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except (py_compile.PyCompileError, SyntaxError, UnicodeError, OSError) as exc:
        sys.stderr.write(f"cannot compile {path}: {exc}\n")
        return False
    return True


def compile_lib(lib: str, workers: int = 0) -> bool:
    """Compile ``lib`` as the module docstring says, on ``workers`` processes (0: one per CPU this
    process may run on); False when a file failed to compile. The file list is made once here and
    handed out in chunks (compileall's own workers get each file with its filter pickled again,
    which cost more than the compiling)."""
    files = sources(lib)
    n = workers or len(os.sched_getaffinity(0))
    if n <= 1 or len(files) < 64:
        return all([compile_one(p) for p in files])
    from concurrent.futures import ProcessPoolExecutor  # here: importing it imports multiprocessing

    with ProcessPoolExecutor(n) as pool:
        return all(pool.map(compile_one, files, chunksize=max(1, len(files) // (n * 8))))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m imagesmith_runtime.bytecode LIB_DIR\n")
        return 2
    return 0 if compile_lib(args[0]) else 1


if __name__ == "__main__":
    # the module under its own name, not __main__: the workers find compile_one by that name
    from .bytecode import main as _main

    sys.exit(_main())
