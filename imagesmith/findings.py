"""What a check found, the shape every verify report shares: the checks that held, the problems
(one line per difference; any problem fails the check) and the notes (what could not be checked,
or holds but is worth saying).

``verify`` of an image (``verify_report.Report``), of this machine's GPUs (``gpu_host.HostReport``)
and of a deploy gate (``gate.GateReport``) each add what they are about, and print these three
lists last, under the same JSON keys. Standard library only: ``gpu_host`` runs on a bare checkout.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Findings:
    # filled in by the checks, never given to the constructor (init=False, not kw_only, which
    # Python 3.10 added: gpu_host runs on whatever Python 3 a GPU machine has), so each report's
    # own fields stay its constructor's, positional and first
    checks: list[str] = field(default_factory=list, init=False)
    problems: list[str] = field(default_factory=list, init=False)
    notes: list[str] = field(default_factory=list, init=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def findings_json(self) -> dict[str, list[str]]:
        """The three lists, in the order every report's JSON ends with."""
        return {"checks": list(self.checks), "problems": list(self.problems), "notes": list(self.notes)}
