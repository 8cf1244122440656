"""Bounded reads of untrusted files and JSON (imagesmith/runtime/untrusted.py)."""

from __future__ import annotations

import os
import resource
import socket
import time

import pytest

from imagesmith.runtime.untrusted import MapOf, Opt, UntrustedInput, loads, read_regular, shape_problem


@pytest.mark.parametrize(
    "text",
    [
        "[" * 20_000 + "]" * 20_000,
        '{"a":' * 20_000 + "1" + "}" * 20_000,
        '["\\\\", ' + "[" * 40 + "]" * 40 + "]",  # an escaped backslash does not hide the brackets after it
        "[" * 20_000,  # not even JSON
        '"' + "[" * 20_000,  # an unterminated string hides nothing
    ],
)
def test_deep_nesting_is_one_error_not_a_recursion_error(text):
    with pytest.raises(UntrustedInput, match="nested more than 32 deep"):
        loads(text, what="the label", max_bytes=1 << 20)


def test_brackets_inside_strings_are_not_nesting():
    text = '{"a": "' + "[" * 50 + '", "b": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\"}'
    assert loads(text, what="x", max_bytes=1 << 20)["a"] == "[" * 50


def test_size_and_items_are_bounded_before_parsing():
    with pytest.raises(UntrustedInput, match="more than the 1 KiB"):
        loads("[" + "0," * 1000 + "0]", what="x", max_bytes=1024)
    with pytest.raises(UntrustedInput, match="more than 1,000 values"):
        loads("[" + "{}," * 2000 + "{}]", what="x", max_bytes=1 << 20, max_items=1000)
    with pytest.raises(UntrustedInput, match="not UTF-8"):
        loads(b'"\xff"', what="x", max_bytes=10)
    with pytest.raises(UntrustedInput, match="not JSON"):
        loads("{", what="x", max_bytes=10)


def test_a_wide_document_is_parsed_quickly():
    # 25,000 objects (1 MB, a large manifest's size): linear work is a few hundredths of a second,
    # anything quadratic in the items or the text minutes
    text = "[" + ",".join(['{"name": "x", "hashes": ["sha256:0"]}'] * 25_000) + "]"
    start = time.monotonic()
    assert len(loads(text, what="x", max_bytes=64 << 20, max_items=1_000_000)) == 25_000
    assert time.monotonic() - start < 5


def test_shapes_name_the_first_wrong_value():
    spec = {"a": MapOf({"v": (str, None), "n": int}), "b": Opt([str])}
    assert shape_problem({"a": {"x": {"v": None, "n": 1}}, "b": ["y"]}, spec) is None
    assert shape_problem({"a": {"x": {"v": 1, "n": 1}}}, spec) == "a.x.v: not a string or null"
    assert shape_problem({"a": {"x": {"v": "1", "n": True}}}, spec) == "a.x.n: not an integer"
    assert shape_problem({"a": {}, "b": [1]}, spec) == "b[0]: not a string"
    assert shape_problem({}, spec) == "a: missing"
    assert shape_problem([], spec) == "the document: not an object"
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    assert shape_problem({"a": {}, "b": deep}, spec) == "b[0]: not a string"  # walks the spec's depth only


def test_read_regular_refuses_what_is_not_a_regular_file(tmp_path):
    (tmp_path / "ok").write_bytes(b"12345")
    assert read_regular(str(tmp_path / "ok"), max_bytes=5) == b"12345"
    with pytest.raises(UntrustedInput, match="more than the 4 bytes"):
        read_regular(str(tmp_path / "ok"), max_bytes=4)
    os.symlink("/dev/zero", tmp_path / "zero")
    os.mkfifo(tmp_path / "fifo")  # opening it to read would wait for a writer forever
    (tmp_path / "dir").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        for name, why in (
            ("zero", "a symbolic link"),
            ("fifo", "a FIFO"),
            ("dir", "a folder"),
            ("sock", "cannot be opened|a socket"),
        ):
            with pytest.raises(UntrustedInput, match=why):
                read_regular(str(tmp_path / name), max_bytes=1 << 20)
    finally:
        sock.close()
    with pytest.raises(UntrustedInput, match="a character device"):
        read_regular("/dev/zero", max_bytes=1 << 20)
    with pytest.raises(FileNotFoundError):
        read_regular(str(tmp_path / "missing"), max_bytes=1)


def test_memory_stays_flat_on_a_large_refused_document():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = "[" + "{}," * 5_000_000 + "{}]"  # 15 MB of text that would be 5 million dicts
    with pytest.raises(UntrustedInput, match="values"):
        loads(text, what="x", max_bytes=64 << 20, max_items=2_000_000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB
