"""The one place the command line prints: progress for people, `error:`/`hint:` lines, and the
``--json`` document (``"imagesmith_json": 1``; errors too: ``{"error", "hint", "exit"}``).

Results go to stdout; progress and errors to stderr. ``OUT`` holds how this invocation prints,
set once from the command's -q/-v/--json before the command runs. typer is imported when first
used: ``stopped`` also reports a Ctrl-C that came while typer itself was importing (``cli.main``).
"""

from __future__ import annotations

import json
import sys
from typing import Callable, NoReturn

from ..errors import ImagesmithError

JSON_FORMAT = 1  # "imagesmith_json" in every JSON document


def _echo(message: str, err: bool = False) -> None:
    import typer  # loaded by then: every command's module imports it

    typer.echo(message, err=err)


class _Output:
    """How this invocation prints, set once from the command's -q/-v/--json."""

    quiet = False
    verbose = False
    json = False


OUT = _Output()


def say(message: str) -> None:
    """Progress and outcomes for people, on stderr; silenced by -q."""
    if not OUT.quiet:
        _echo(message, err=True)


def detail(message: str) -> None:
    """Shown with -v only."""
    if OUT.verbose and not OUT.quiet:
        _echo(message, err=True)


def progress() -> Callable[[str], None]:
    """The library's progress callback: `imagesmith: …` lines on stderr, silenced by -q; a
    message that starts with ``warning:`` (e.g. "CUDA twice") is shown under -q too: -q silences
    what went well, not what needs a look."""

    def show(msg: str) -> None:
        if msg.startswith("warning:"):
            _echo(f"imagesmith: {msg}", err=True)
        else:
            say(f"imagesmith: {msg}")

    return show


def line(text: str) -> None:
    """One line of a command's result on stdout, with each character that is not printable
    written as its escape (``untrusted.printable``): what inspect, diff, verify and prune print
    quotes labels, tags and file names anyone can set, and such a value must neither start a line
    of its own ("ok: ...", a newline or carriage return) nor reach the terminal as a control
    sequence (a title, a colour, a cleared screen)."""
    from ..runtime.untrusted import printable

    _echo(printable(text))


def _paragraph(text: str) -> str:
    """An error's text with its own line breaks kept and every other control character escaped."""
    from ..runtime.untrusted import printable

    return "\n".join(printable(part) for part in text.split("\n"))


def json_text(data: dict) -> str:
    """A --json document as text (also what `build --metadata-file` writes)."""
    return json.dumps({"imagesmith_json": JSON_FORMAT, **data}, indent=2, sort_keys=True)


def emit_json(data: dict) -> None:
    _echo(json_text(data))


def report(exc: ImagesmithError, exit_code: int, *, as_json: bool | None = None) -> None:
    """One error: `error:` and `hint:` lines on stderr, and under --json the same on stdout
    (``as_json=False``: the command has printed its JSON document already)."""
    _echo(f"error: {_paragraph(str(exc))}", err=True)
    if exc.hint:
        _echo(f"hint: {_paragraph(exc.hint)}", err=True)
    if OUT.json if as_json is None else as_json:
        emit_json({"error": str(exc), "hint": exc.hint, "exit": exit_code})


def fail(exc: ImagesmithError) -> NoReturn:
    """A check that does not hold, after the command printed its JSON document: the error's lines
    on stderr only, and its exit code."""
    report(exc, exc.exit_code, as_json=False)
    import typer

    raise typer.Exit(exc.exit_code)


def fail_all(problems: list[str], hint: str, exit_code: int = 1) -> NoReturn:
    """Several problems of one check: an `error:` line each, then one `hint:` line."""
    for problem in problems:
        _echo(f"error: {_paragraph(problem)}", err=True)
    _echo(f"hint: {hint}", err=True)
    import typer

    raise typer.Exit(exit_code)


def stopped(why: str) -> None:
    """The process was stopped (Ctrl-C, SIGTERM): one `error:` line, no hint. Written without
    typer, which a Ctrl-C may have stopped half-imported (importing it again would take as long)."""
    sys.stderr.write(f"error: {why}\n")
    sys.stderr.flush()
