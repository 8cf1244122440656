"""The test harness's own pure helpers (tests/conftest.py)."""

from __future__ import annotations

import traceback

import pytest

from tests.conftest import module_seconds


def test_the_record_lists_modules_longest_first_to_a_tenth_of_a_second():
    spent = {"tests/engine/test_b.py": 12.04, "tests/unit/test_a.py": 0.26, "tests/engine/test_a.py": 12.01}
    assert module_seconds(spent) == [
        ["tests/engine/test_a.py", 12.0],
        ["tests/engine/test_b.py", 12.0],
        ["tests/unit/test_a.py", 0.3],
    ]
    assert module_seconds({}) == []


def test_groups_go_out_longest_first_whole_and_new_ones_get_their_modules_or_tiers_seconds():
    from tests.conftest import longest_first, work_unit

    assert work_unit("tests/engine/test_x.py", "tests.engine.test_x") == "tests/engine/test_x.py"
    assert work_unit("tests/engine/test_x.py", "x-alone") == "tests/engine/test_x.py@x-alone"
    seconds = [
        ["tests/engine/test_long.py", 300.0],
        ["tests/engine/test_short.py", 20.0],
        ["tests/engine/test_split.py@split-alone", 90.0],
        ["tests/unit/test_a.py", 2.0],
    ]
    items = [  # (group, unit)
        ("a", "tests/unit/test_a.py"),
        ("b", "tests/unit/test_b.py"),  # not recorded: the unit tier's mean, 2.0
        ("short", "tests/engine/test_short.py"),
        ("new", "tests/engine/test_new.py"),  # not recorded: the engine tier's mean, 136.7
        ("long", "tests/engine/test_long.py"),
        ("long", "tests/engine/test_long.py"),
        ("alone", "tests/engine/test_short.py@alone"),  # a group of its own since: its module's 20.0
        ("split-alone", "tests/engine/test_split.py@split-alone"),
    ]
    groups, units = [g for g, _ in items], [u for _, u in items]
    order = longest_first(groups, units, seconds)
    assert [groups[i] for i in order] == ["long", "long", "new", "split-alone", "short", "alone", "a", "b"]
    assert order[:2] == [4, 5]  # a group's own order is kept
    assert longest_first(groups, units, []) == list(range(len(groups)))  # no record: as collected


def test_cli_subprocesses_keep_bytecode_out_of_the_sources_only_where_the_caller_forbids_it():
    from tests.conftest import REPO
    from tests.helpers import _bytecode_kept

    kept = _bytecode_kept({"PATH": "/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    assert kept == {"PATH": "/bin", "PYTHONPYCACHEPREFIX": str(REPO / "build" / "pycache")}
    assert _bytecode_kept({"PATH": "/bin"}) == {"PATH": "/bin"}  # bytecode beside the sources, as asked
    own = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": "/elsewhere"}
    assert _bytecode_kept(own) == own


def test_a_second_engine_stops_as_soon_as_its_process_ends(tmp_path):
    """stop() waited its full 20 s for every second engine: the dockerd it started had exited
    but stayed a zombie, which ``kill(pid, 0)`` still finds, until SIGKILL. A child that ends on
    SIGTERM, started and let go as start_second_engine lets dockerd go, is reaped at once."""
    import subprocess
    import time

    from tests.engines import SecondEngine

    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    pid = child.pid
    del child  # as start_second_engine keeps only the PID
    (tmp_path / "root").mkdir()
    (tmp_path / "run").mkdir()
    engine = SecondEngine(root=tmp_path / "root", run=tmp_path / "run", bridge="isbtest0x0", pid=pid)
    started = time.monotonic()
    engine.stop()
    assert time.monotonic() - started < 5
    assert not (tmp_path / "root").exists() and not (tmp_path / "run").exists()


def test_a_clean_clone_orders_its_first_run_by_the_committed_seconds(tmp_path, monkeypatch):
    """Without build/test-times.json the groups are still handed out longest first, by
    tests/test-times.json, whose units all name test modules that exist."""
    import tests.conftest as conftest

    monkeypatch.setattr(conftest, "RECORD", tmp_path / "no-record.json")
    seconds = conftest._last_module_seconds()
    assert seconds and seconds == conftest.module_seconds(dict(seconds))  # longest first
    for unit, _ in seconds:
        assert (conftest.REPO / unit.split("@", 1)[0]).is_file(), unit
    longest = seconds[0][0]
    assert longest.startswith("tests/engine/")
    (tmp_path / "record.json").write_text('{"modules": [["tests/unit/test_a.py", 1.0]]}')
    monkeypatch.setattr(conftest, "RECORD", tmp_path / "record.json")
    assert conftest._last_module_seconds() == [["tests/unit/test_a.py", 1.0]]  # a run's own record first


def test_an_in_process_cli_call_fails_on_a_traceback_the_cli_prints_itself(monkeypatch):
    """``check_traceback`` held for the subprocess only: an in-process call whose CLI printed a
    traceback itself (``traceback.print_exc``, a logging handler) and went on passed."""
    from imagesmith.cli import entry
    from tests.helpers import cli

    def printed(args, *rest):
        try:
            raise RuntimeError("swallowed by the command")
        except RuntimeError:
            traceback.print_exc()
        return 0

    monkeypatch.setattr(entry, "_main", printed)
    with pytest.raises(AssertionError, match="swallowed by the command"):
        cli("--version", in_process=True)
    shown = cli("--version", in_process=True, check_traceback=False)  # the caller's to look at
    assert shown.returncode == 0 and "Traceback" in shown.stderr


def test_a_test_server_answers_with_the_headers_it_is_given():
    """``Answering.answer`` sends the headers asked (the token server's WWW-Authenticate), then the
    body with its length."""
    import urllib.error
    import urllib.request

    from tests.helpers import serving
    from tests.socket_engine import Answering

    class Handler(Answering):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            self.answer(401, b"no", {"WWW-Authenticate": 'Basic realm="test"'})

    with serving(Handler) as host, pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://{host}/token", timeout=10)
    refused = caught.value
    assert (refused.code, refused.headers["WWW-Authenticate"], refused.read()) == (401, 'Basic realm="test"', b"no")


def test_run_named_after_the_project_option_still_gets_a_real_process(tmp_path, monkeypatch):
    """`cli("-p", ROOT, "run", …)`: the command is `run` (cli.base.command_in skips -p's value), so
    it runs in a subprocess, as REAL_PROCESS says; the first non-option argument was ROOT."""
    from tests import helpers

    def in_process(*args, **kwargs):
        raise AssertionError(f"run in the test's process: {args}")

    monkeypatch.setattr(helpers, "cli_in_process", in_process)
    monkeypatch.setitem(helpers.IN_PROCESS, "on", False)  # as in the engine tier (the unit tier's conftest sets it)
    proc = helpers.cli("-p", str(tmp_path), "run", "--help")
    assert proc.returncode == 0 and "Usage" in proc.stdout, proc
