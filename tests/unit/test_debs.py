"""runtime/debs.py: apt's simulated install (on the build platform) turned into dpkg's invocations
(on the target), on the host."""

import io

import pytest

from imagesmith.runtime.debs import PlanError, main, plan

# apt-get install --simulate's words, as apt 2.6 writes them (the Conf of a pre-dependency first)
SIMULATION = """\
NOTE: This is only a simulation!
Reading package lists...
The following NEW packages will be installed:
  libgomp1 libjq1 libonig5 jq
Inst libonig5 (6.9.8-1 Debian:12.12/oldstable [arm64])
Conf libonig5 (6.9.8-1 Debian:12.12/oldstable [arm64])
Inst libgomp1 (12.2.0-14+deb12u1 Debian:12.12/oldstable [arm64])
Inst libjq1 (1.6-2.1 Debian:12.12/oldstable [arm64])
Inst tzdata [2024a-0+deb12u1] (1:2025b-0+deb12u1 Debian:12.12/oldstable [all])
Conf libgomp1 (12.2.0-14+deb12u1 Debian:12.12/oldstable [arm64])
Conf libjq1 (1.6-2.1 Debian:12.12/oldstable [arm64])
Conf tzdata (1:2025b-0+deb12u1 Debian:12.12/oldstable [all])
"""
FILES = [
    "libgomp1_12.2.0-14+deb12u1_arm64.deb",
    "libjq1_1.6-2.1_arm64.deb",
    "libonig5_6.9.8-1_arm64.deb",
    "tzdata_1%3a2025b-0+deb12u1_all.deb",
    "lock",
]


def test_dpkg_runs_in_apts_order_unpacking_without_triggers():
    assert plan(SIMULATION, FILES) == [
        ["--no-triggers", "--unpack", "libonig5_6.9.8-1_arm64.deb"],
        ["--configure", "libonig5:arm64"],
        [
            "--no-triggers",
            "--unpack",
            "libgomp1_12.2.0-14+deb12u1_arm64.deb",
            "libjq1_1.6-2.1_arm64.deb",
            "tzdata_1%3a2025b-0+deb12u1_all.deb",
        ],
        ["--configure", "libgomp1:arm64", "libjq1:arm64", "tzdata"],
    ]


def test_nothing_to_install_is_no_invocation():
    assert plan("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n", []) == []


@pytest.mark.parametrize(
    ("simulation", "files", "message"),
    [
        ("Remv libgomp1 [12.2.0-14]\n", [], "would remove libgomp1"),
        (SIMULATION, FILES[1:], "no single downloaded file for libgomp1"),
        (SIMULATION, [*FILES, "libgomp1_12.2.0-13_arm64.deb"], "downloaded but not in apt's plan: libgomp1_12.2.0-13"),
        ("Inst jq;rm (1.6 Debian [arm64])\n", ["jq;rm_1.6_arm64.deb"], "cannot read"),
        ("Inst jq (1.6;rm Debian [arm64])\n", ["jq_1.6;rm_arm64.deb"], "cannot read"),
        ("Inst jq (1.*6 Debian [arm64])\n", ["jq_1.*6_arm64.deb"], "cannot read"),
    ],
)
def test_a_plan_that_does_not_add_up_is_refused(simulation, files, message):
    with pytest.raises(PlanError, match=message):
        plan(simulation, files)


def test_the_command_prints_one_invocation_a_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "libgomp1_12.2.0-14+deb12u1_arm64.deb").write_bytes(b"deb")
    monkeypatch.setattr("sys.stdin", io.StringIO(SIMULATION.splitlines()[6] + "\n"))
    assert main(["plan", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "--no-triggers --unpack libgomp1_12.2.0-14+deb12u1_arm64.deb\n"
    assert main(["plan"]) == 2
