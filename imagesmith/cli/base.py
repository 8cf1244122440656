"""The typer app, the options given before the command, and ``command``: how every command's
ImagesmithErrors become one `error:` report and an exit code."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Callable, Iterable, Optional

import typer

from .. import __version__
from ..errors import ImagesmithError, UsageError
from .output import OUT, report, stopped

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="One pinned, reproducible image for training and serving, verified at deploy time.",
)

# The options given before the command (`imagesmith -v build`, as in git and docker): set by the
# app's callback on every invocation, merged into the command's own by ``command``
_GLOBAL: dict = {}
_GLOBAL_OPTIONS = {"as_json": "--json", "quiet": "--quiet", "verbose": "--verbose", "project": "--project"}


def command(name: str | None = None, *, own_error_exit: int | None = None) -> Callable:
    """A command whose ImagesmithErrors become one `error:` report and an exit code
    (``own_error_exit``: that code for every one of them), and a Ctrl-C `error: interrupted`
    and 130; ``load_commands`` adds it to the app."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(**kwargs):
            for key in ("as_json", "quiet", "verbose"):
                if _GLOBAL.get(key) and key in kwargs:
                    kwargs[key] = True
            if _GLOBAL.get("project") is not None and kwargs.get("project") == Path("."):
                kwargs["project"] = _GLOBAL["project"]
            OUT.quiet = bool(kwargs.get("quiet"))
            OUT.verbose = bool(kwargs.get("verbose"))
            OUT.json = bool(kwargs.get("as_json"))
            try:
                return fn(**kwargs)
            except ImagesmithError as exc:
                if isinstance(exc, UsageError) and not exc.hint:
                    exc.hint = f"`imagesmith {command_name} --help` lists the arguments and options"
                code = own_error_exit or exc.exit_code
                report(exc, code)
                raise typer.Exit(code) from None
            except KeyboardInterrupt:
                # said here: typer (0.28) turns a Ctrl-C inside a command into a silent exit 130
                stopped("interrupted")
                raise typer.Exit(130) from None

        command_name = name or fn.__name__
        wrapper.command_name = name  # type: ignore[attr-defined]
        return wrapper

    return register


# Every command, in the order `imagesmith --help` lists them: command ``name`` is the function
# ``name`` (``-`` as ``_``) of module ``imagesmith.cli.<name>``, imported only when it is loaded
COMMANDS = (
    "init",
    "lock",
    "render",
    "build",
    "verify",
    "inspect",
    "diff",
    "parity-of",
    "run",
    "golden",
    "signoff",
    "sign",
    "prune",
    "export",
)


def load_commands(names: Iterable[str]) -> typer.Typer:
    """Import the named commands' modules and add those commands to the app (once each; the app
    keeps `--help`'s order whatever the order they are loaded in), and return the app."""
    have = {info.name for info in app.registered_commands}
    for name in names:
        if name not in have:
            module = name.replace("-", "_")
            app.command(name=name)(getattr(importlib.import_module(f"{__package__}.{module}"), module))
            have.add(name)
    app.registered_commands.sort(key=lambda info: COMMANDS.index(info.name or ""))
    return app


def command_in(args: list[str]) -> str | None:
    """The command ``args`` name, if it is one of ``COMMANDS``: the first argument that is neither an
    option given before the command nor ``-p``'s value (None for `--help`, a typo, no command)."""
    rest = iter(args)
    for arg in rest:
        if arg in ("-p", "--project"):
            next(rest, None)
        elif arg == "--":
            break
        elif not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"imagesmith {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print imagesmith's version and exit."
    ),
    project: Optional[Path] = typer.Option(
        None, "--project", "-p", help="Project directory for the command (as the command's own -p)."
    ),
    as_json: bool = typer.Option(False, "--json", help="The command's --json, given before it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="The command's -q, given before it."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="The command's -v, given before it."),
) -> None:
    """One pinned, reproducible image for training and serving, verified at deploy time.

    -p, -q, -v and --json may come before the command, as in git and docker (`imagesmith -v
    build`), or after it; a command that has no such option refuses it."""
    given = {"project": project, "as_json": as_json, "quiet": quiet, "verbose": verbose}
    _GLOBAL.clear()
    _GLOBAL.update(given)
    group = ctx.command
    sub = group.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None  # type: ignore[attr-defined]
    if sub is not None:
        names = {param.name for param in sub.params}
        for key, value in given.items():
            if value not in (None, False) and key not in names:
                raise typer.BadParameter(
                    f"`imagesmith {ctx.invoked_subcommand}` has no such option",
                    ctx=ctx,
                    param_hint=f"'{_GLOBAL_OPTIONS[key]}'",
                )
