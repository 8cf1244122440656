"""The engine seam's shape: the ``Engine`` facade keeps a method only when a consumer calls it
(a forwarding method nobody calls only repeats a backend's signature), and ``protocols.py`` only
the protocols a consumer takes. Read from the source, as test_architecture.py does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from imagesmith.engine import Engine

PACKAGE = Path(__file__).resolve().parents[2] / "imagesmith"


def _consumers() -> str:
    """The text of every module outside the engine seam."""
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted(PACKAGE.rglob("*.py"))
        if "engine" not in path.relative_to(PACKAGE).parts[:1]
    )


def test_every_method_of_the_facade_has_a_consumer():
    text = _consumers()
    methods = [
        name
        for name, value in vars(Engine).items()
        if callable(value) and not name.startswith("_") and name != "service_address"  # the containers' callback
    ]
    unused = [name for name in methods if not re.search(rf"\.{name}\b", text)]
    assert methods and unused == []


def test_every_protocol_has_a_consumer():
    tree = ast.parse((PACKAGE / "engine" / "protocols.py").read_text(encoding="utf-8"))
    protocols = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    text = _consumers()
    assert protocols and [name for name in protocols if not re.search(rf"\b{name}\b", text)] == []
