"""The documentation holds together: README.md is the front door (under 300 lines, the quickstart,
links to docs/), every relative link of README.md, CONTRIBUTING.md, bench/README.md and docs/
reaches a file and a heading that exist, every page of docs/ is reachable from its index, and
every page a user-visible string of imagesmith names (an error's hint, an option's help, the
comments `init` writes) exists. A hint never names a README section: those moved to docs/."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LINKED = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "bench" / "README.md", *PAGES]
LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [t for t in LINK_RE.findall(text) if not re.match(r"[a-z]+:", t)]


def test_the_readme_is_the_front_door():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 300
    assert "<!-- quickstart:" in text and "<!-- /quickstart -->" in text
    targets = set(links(REPO / "README.md"))
    assert {"docs/index.md", "bench/README.md", "CONTRIBUTING.md"} <= targets, targets
    # the reference pages that define the public contract are one click away
    assert {"docs/reference/cli.md", "docs/reference/spec.md", "docs/reference/labels.md"} <= targets, targets


@pytest.mark.parametrize("path", LINKED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading(path):
    problems = []
    for target in links(path):
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not problems, problems


def test_every_docs_page_is_reachable_from_the_index():
    index = DOCS / "index.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in links(index)}
    missing = [str(p.relative_to(REPO)) for p in PAGES if p != index and p.resolve() not in linked]
    assert len(PAGES) > 10 and not missing, missing


def user_visible_strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module, f-string parts included, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings, strings = set(), []
    for node in ast.walk(tree):  # one pass: the docstrings are left out once every node was seen
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                strings.append(node)
        elif isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [(node.lineno, node.value) for node in strings if id(node) not in docstrings]


MODULES = sorted((REPO / "imagesmith").rglob("*.py"))


def test_hints_name_docs_pages_that_exist_and_never_a_readme_section():
    named, problems = 0, []
    for module in MODULES:
        for line, text in user_visible_strings(module):
            where = f"{module.relative_to(REPO)}:{line}"
            if "README" in text:
                problems.append(f"{where}: names the README ({text!r}); name the docs/ page instead")
            for page in re.findall(r"docs/[\w./-]+?\.md", text):
                named += 1
                if not (REPO / page).is_file():
                    problems.append(f"{where}: {page} does not exist")
    assert not problems, problems
    assert named >= 5  # the engine, spec, signing and signoff hints name their pages
