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
