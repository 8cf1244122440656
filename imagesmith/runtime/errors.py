"""The root of every error imagesmith reports, standard library only.

It lives in the runtime package so that code running in images (the preprocessing wheel builder,
the stamp check) raises the very same class the host's CLI catches; ``imagesmith/errors.py``
re-exports it and holds the host's subclasses (the tree is drawn there).
"""

from __future__ import annotations


class ImagesmithError(Exception):
    """Base of every error imagesmith reports. ``exit_code`` is what the CLI exits with."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message
