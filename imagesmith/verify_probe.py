"""The content probe: ``runtime/probe.py`` (the host's copy) run inside a locked-down container
of the image, its report bounded and shape-checked, kept in the host's cache by image ID. A
diagnostic, never the gate (``PROBE_NOTE``)."""

from __future__ import annotations

import json
from pathlib import Path

from . import runtime
from .engine import Engine, ImageInfo
from .errors import VerifyError
from .facts import cache_load, cache_store
from .layout import (
    APP_DIR,
    VENV,
    VENV_PYTHON,
)
from .runtime.untrusted import MapOf, Opt, UntrustedInput, loads, shape_problem

PROBE = Path(runtime.__file__).resolve().parent / "probe.py"  # the host's copy: never the image's
PROBE_OUTPUT_LIMIT = 32 << 20  # bytes of the probe's report (a large ML image's is a few MiB)
PROBE_MAX_ITEMS = 2_000_000  # values in it (one per file with `diff --files`)
_DIST_SHAPE = {
    "version": (str, None),
    "files": int,
    "mismatched": [str],
    "missing": [str],
    "stale_bytecode": [str],
    "unhashed": Opt([str]),
    "error": Opt((str, None)),
    "content": str,
    "file_hashes": Opt(MapOf(str)),
}
PROBE_SHAPE = {
    "probe": int,
    "python": str,
    "platform": str,
    "path_python": Opt((str, None)),
    "pyvenv_cfg": Opt((MapOf(str), None)),
    "distributions": MapOf(_DIST_SHAPE),
    "duplicates": Opt([str]),
    "unrecorded": MapOf(str),
    "preprocessing": MapOf({"app": (str, None), "site": (str, None), "owner": Opt((str, None))}),
    "preprocessing_stale_bytecode": Opt([[str]]),
    "dpkg": MapOf(str),
}


def probe_report_problem(facts: object) -> str | None:
    """Why a probe report (parsed) is not of the shape ``probe.py`` prints (None: it is)."""
    problem = shape_problem(facts, PROBE_SHAPE, "")
    if problem:
        return problem
    assert isinstance(facts, dict)
    if "start_error" in facts:
        return "start_error: set by the probe (only verify sets it)"
    if any(len(pair) != 2 for pair in facts.get("preprocessing_stale_bytecode") or ()):
        return "preprocessing_stale_bytecode: not a list of pairs"
    return None


# Variables that change what the dynamic loader or Python loads: the probe runs with them empty
SCRUBBED_ENV = ("LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
PROBE_NOTE = (
    "the content probe runs the image's own Python: a diagnostic that says what differs, not a "
    "gate; the gate is a signature on the digest (`imagesmith verify --key`)"
)


def run_probe(engine: Engine, info: ImageInfo, *, preprocessing: tuple[str, ...] = (), detail: bool = False) -> dict:
    """Facts from inside the image (see probe.py), or ``{"start_error": ...}`` when the image has
    no Python environment where imagesmith puts it. Raises VerifyError when the probe crashed.

    A report is kept in the host's cache under the image ID (content-addressed: the same files
    and config give the same facts) and the probe's own text and options, like the files read
    from outside: the image is probed once per machine, by this host's copy of the probe."""
    options = json.dumps(
        {
            "venv": VENV,
            "app": APP_DIR,
            "preprocessing": sorted(set(preprocessing)),
            "files": detail,
        }
    )
    script = PROBE.read_text(encoding="utf-8")
    key = probe_key(script, options)
    cached = cache_load("probe", info.id).get(key)
    if isinstance(cached, dict) and probe_report_problem(cached) is None:
        return cached
    run = engine.run_isolated(
        info.id,
        [VENV_PYTHON, "-I", "-S", "-c", script, options],
        environment={name: "" for name in SCRUBBED_ENV},
        output_limit=PROBE_OUTPUT_LIMIT,
    )
    if run.exit_code is None:
        return {"start_error": run.start_error}
    if run.truncated:
        raise VerifyError(
            f"the content probe printed more than {PROBE_OUTPUT_LIMIT >> 20} MiB inside {info.ref}: not a report "
            "of imagesmith's probe (it was stopped)",
            hint="the image's Python is not the interpreter it claims to be; do not deploy it",
        )
    if run.exit_code != 0:
        tail = run.stderr.strip().splitlines()[-1:] or [f"exit {run.exit_code}"]
        raise VerifyError(
            f"the content probe failed inside {info.ref}: {tail[0]}",
            hint="the image's Python cannot run a standard-library script; try --labels-only",
        )
    try:
        facts = loads(
            run.stdout,
            what=f"the content probe's report from {info.ref}",
            max_bytes=PROBE_OUTPUT_LIMIT,
            max_items=PROBE_MAX_ITEMS,
        )
    except UntrustedInput as exc:
        raise VerifyError(
            str(exc)[:300], hint="the image's Python is not the interpreter it claims to be; do not deploy it"
        ) from exc
    problem = probe_report_problem(facts)
    if problem:
        raise VerifyError(
            f"the content probe's report from {info.ref} is not of the probe's shape ({problem[:200]})",
            hint="the image's Python is not the interpreter it claims to be; do not deploy it",
        )
    assert isinstance(facts, dict)
    cache_store("probe", info.id, {**cache_load("probe", info.id), key: facts})
    return facts


def probe_key(script: str, options: str) -> str:
    """The cache key of a probe report: the probe's text and its options (never the image's)."""
    import hashlib

    return hashlib.sha256((script + "\0" + options).encode("utf-8")).hexdigest()
