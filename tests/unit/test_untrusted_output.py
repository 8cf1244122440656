"""What inspect, diff, verify and prune print quotes labels anyone can set: a label with a newline,
a carriage return or an escape sequence must neither forge a line ("ok: verified") nor reach the
terminal as a control sequence. Each such character is printed as its escape."""

from __future__ import annotations

from pathlib import Path

from imagesmith.cli import output
from imagesmith.engine import ImageInfo
from imagesmith.errors import UsageError
from imagesmith.facts import manifest_of
from imagesmith.layout import LABEL_PARITY
from imagesmith.plan import plan_for
from imagesmith.spec.load import load_spec
from tests.fakes import image_info
from tests.helpers import fake_lock

TINY = Path(__file__).resolve().parents[1] / "projects" / "tiny"
FORGED = "sha256:" + "c" * 64 + "\x1b[31mRED\nok: verified\r\x1b]0;pwned\x07"


def test_a_result_line_escapes_what_a_label_could_forge(capsys):
    output.line(f"parity:   {FORGED}")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert "\\x1b[31mRED\\nok: verified\\r\\x1b]0;pwned\\x07" in out


def test_an_error_keeps_its_own_lines_and_escapes_the_rest(capsys):
    output.report(UsageError("two lines:\n  one \x1b[2J", hint="a\rb"), 2, as_json=False)
    err = capsys.readouterr().err
    assert err == "error: two lines:\n  one \\x1b[2J\nhint: a\\rb\n"


def test_a_forged_parity_label_is_quoted_on_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    facts = plan_for(load_spec(TINY), fake_lock()).facts()
    info: ImageInfo = image_info("x:train", labels={LABEL_PARITY: FORGED})
    manifest, problems = manifest_of(info, facts)
    assert manifest is None and len(problems) == 1
    assert "\n" not in problems[0] and "\x1b" not in problems[0] and "\\nok: verified" in problems[0]
