"""The test harness's own pure helpers (tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import module_seconds


def test_the_record_lists_modules_longest_first_to_a_tenth_of_a_second():
    spent = {"tests/engine/test_b.py": 12.04, "tests/unit/test_a.py": 0.26, "tests/engine/test_a.py": 12.01}
    assert module_seconds(spent) == [
        ["tests/engine/test_a.py", 12.0],
        ["tests/engine/test_b.py", 12.0],
        ["tests/unit/test_a.py", 0.3],
    ]
    assert module_seconds({}) == []


def test_groups_go_out_longest_first_whole_and_new_modules_get_their_tiers_mean():
    from tests.conftest import longest_first

    seconds = [
        ["tests/engine/test_long.py", 300.0],
        ["tests/engine/test_short.py", 20.0],
        ["tests/unit/test_a.py", 2.0],
    ]
    modules = [
        "tests/unit/test_a.py",
        "tests/unit/test_b.py",  # not recorded: the unit mean, 2.0
        "tests/engine/test_short.py",
        "tests/engine/test_new.py",  # not recorded: the engine mean, 160.0
        "tests/engine/test_long.py",
        "tests/engine/test_long.py",
        "tests/engine/test_short.py",
    ]
    # test_short's second test has a group of its own; a group is as long as its longest module
    groups = ["a", "b", "short", "new", "long", "long", "alone"]
    order = longest_first(groups, modules, seconds)
    assert [groups[i] for i in order] == ["long", "long", "new", "short", "alone", "a", "b"]
    assert order[:2] == [4, 5]  # a group's own order is kept
    assert longest_first(groups, modules, []) == list(range(len(groups)))  # no record: as collected
