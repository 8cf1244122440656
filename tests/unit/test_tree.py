"""runtime/tree.py: the files of a layer made in a stage of their own, for shared to COPY: folders
with the target's modes and owners (a COPY gives a folder the image has already the mode, owner and
time it has in the stage), the images' user's account lines, every time 0."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagesmith.runtime import tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (the build stages run as root)")


@pytest.fixture
def target(tmp_path):
    """A target's root: /etc with account files, a sticky /tmp, a /var owned by 0:0 with /var/lib
    owned by 42:42 mode 0750, a symlink /lib -> usr/lib."""
    root = tmp_path / "target"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    os.chmod(etc / "shadow", 0o640)
    os.chown(etc / "shadow", 0, 42)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "var" / "lib").mkdir(parents=True)
    os.chmod(root / "var" / "lib", 0o750)
    os.chown(root / "var" / "lib", 42, 42)
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    (root / "home").mkdir()
    return root


def _meta(path: Path) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)


def test_folders_take_the_targets_mode_and_owner_and_the_time_0(target, tmp_path):
    out = tmp_path / "out"
    tree.dirs(str(target), str(out), "/var/lib/models/a", owner=(10001, 10001))
    assert _meta(out / "var") == (0o755, 0, 0, 0)
    assert _meta(out / "var" / "lib") == (0o750, 42, 42, 0)  # as the target has it, not 0755 root
    assert _meta(out / "var" / "lib" / "models") == (0o755, 0, 0, 0)  # the target has none
    assert _meta(out / "var" / "lib" / "models" / "a") == (0o755, 10001, 10001, 0)
    tree.dirs(str(target), str(out), "/tmp", owner=(10001, 10001))
    assert _meta(out / "tmp") == (0o1777, 10001, 10001, 0)  # still sticky and world-writable


def test_a_path_through_a_symlink_or_a_file_of_the_target_is_refused(target, tmp_path):
    with pytest.raises(tree.TreeError, match="symbolic link /lib"):
        tree.dirs(str(target), str(tmp_path / "out"), "/lib/models")
    with pytest.raises(tree.TreeError, match="the file /etc/passwd"):
        tree.dirs(str(target), str(tmp_path / "out"), "/etc/passwd/x")
    for bad in ("relative/path", "/a/../etc"):
        with pytest.raises(tree.TreeError, match="absolute path"):
            tree.dirs(str(target), str(tmp_path / "out"), bad)


LINES = {"passwd": "me:x:10001:10001:me:/home/me:/usr/sbin/nologin", "group": "me:x:10001:", "shadow": "me:!:::::::"}
LINES["gshadow"] = "me:!::"


def test_the_users_lines_are_appended_to_copies_of_the_targets_files(target, tmp_path):
    out = tmp_path / "out"
    written = tree.user(str(target), str(out), "me", LINES)
    assert [Path(p).name for p in written] == ["passwd", "group", "shadow"]  # the target has no gshadow
    assert (out / "etc" / "passwd").read_text() == "root:x:0:0:root:/root:/bin/bash\n" + LINES["passwd"] + "\n"
    assert (out / "etc" / "shadow").read_text().endswith("\nme:!:::::::\n")
    assert _meta(out / "etc" / "shadow") == (0o640, 0, 42, 0)  # the original's mode and owner
    assert _meta(out / "etc") == (0o755, 0, 0, 0)
    assert not (out / "etc" / "gshadow").exists()
    # the target's own files are as they were
    assert (target / "etc" / "passwd").read_text() == "root:x:0:0:root:/root:/bin/bash\n"


def test_a_target_that_has_the_user_gets_only_the_folder(target, tmp_path):
    (target / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nme:x:5:5::/home/me:/bin/sh\n")
    out = tmp_path / "out"
    assert tree.user(str(target), str(out), "me", LINES) == []
    assert sorted(os.listdir(out)) == ["etc"] and os.listdir(out / "etc") == []
    assert _meta(out / "etc") == (0o755, 0, 0, 0)


def test_the_same_inputs_give_the_same_tree(target, tmp_path):
    def made(out: Path) -> list[tuple]:
        tree.user(str(target), str(out), "me", LINES)
        tree.dirs(str(target), str(out), "/home/me", owner=(10001, 10001))
        tree.dirs(str(target), str(out), "/artifacts", owner=(10001, 10001))
        return sorted(
            (str(p.relative_to(out)), _meta(p), p.read_bytes() if p.is_file() else b"") for p in out.rglob("*")
        )

    assert made(tmp_path / "one") == made(tmp_path / "two")


def test_the_command_line(target, tmp_path, capsys):
    out = tmp_path / "out"
    assert tree.main(["dirs", str(target), str(out), "--owner", "7:8", "/home/me", "/srv/x"]) == 0
    assert _meta(out / "home" / "me")[1:3] == (7, 8) and _meta(out / "srv" / "x")[1:3] == (7, 8)
    assert tree.main(["user", str(target), str(out), "me", *LINES.values()]) == 0
    assert LINES["passwd"] in (out / "etc" / "passwd").read_text()
    assert tree.main(["dirs", str(target), str(out), "--owner", "me", "/x"]) == 1
    assert "--owner takes UID:GID" in capsys.readouterr().err
    assert tree.main(["user", str(target)]) == 2
