"""The console script and ``python -m imagesmith``: run the command, return its exit code, and
turn typer's command-line errors into plain `error:`/`hint:` lines (exit 2)."""

from __future__ import annotations

import sys

import typer

from ..errors import UsageError
from .base import COMMANDS, command_in, load_commands
from .output import OUT, report, stopped


def _click_exceptions() -> tuple[tuple, tuple, tuple]:
    """(usage errors, "no arguments: show help", aborts) as click classes. Recent typer vendors its
    own click (``typer._click``, not a public module), older typer uses click itself: the first
    that exists (importing click too when typer does not use it costs start-up time for nothing)."""
    modules = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(__import__(name, fromlist=["UsageError"]))
            break
        except ImportError:
            pass
    usage = tuple(m.UsageError for m in modules)
    no_args = tuple(m.NoArgsIsHelpError for m in modules if hasattr(m, "NoArgsIsHelpError"))
    aborts = tuple({typer.Abort, *(m.Abort for m in modules if hasattr(m, "Abort"))})
    return usage, no_args, aborts


def main(argv: list[str] | None = None) -> int:
    """The console script and ``python -m imagesmith``: runs the command and returns its exit
    code, turning typer's command-line errors into plain `error:`/`hint:` lines (exit 2)."""
    usage, no_args, aborts = _click_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args, usage, no_args, aborts)
    except KeyboardInterrupt:  # Ctrl-C while the command's modules load (a traceback before)
        stopped("interrupted")
        return 130


def _main(args: list[str], usage: tuple, no_args: tuple, aborts: tuple) -> int:
    named = command_in(args)
    app = load_commands([named] if named else COMMANDS)  # `--help` and a typo: all of them
    try:
        code = app(args=args, prog_name="imagesmith", standalone_mode=False)
    except no_args as exc:  # `imagesmith` or `imagesmith CMD` alone: the help, on stderr
        typer.echo(exc.ctx.get_help() if getattr(exc, "ctx", None) else str(exc), err=True)
        return 2
    except usage as exc:
        OUT.json = "--json" in args
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else "imagesmith"
        report(UsageError(exc.format_message(), hint=f"`{where} --help` lists the arguments and options"), 2)
        return 2
    except (*aborts, KeyboardInterrupt):
        stopped("interrupted")
        return 130
    return code if isinstance(code, int) else 0
