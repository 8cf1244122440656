"""THIS machine against an image's GPU contract (``gpu.py``): the NVIDIA driver and each GPU.

The GPUs come from ``nvidia-smi`` on PATH, asked and read by ``runtime/nvidia_smi.py`` (the
signoff hardware record reads them the same way): driver, compute capability (None on drivers
before R510, which refuse the field) and name. No ``nvidia-smi`` on PATH, a driver it cannot talk
to, or no device: "this machine has no NVIDIA GPU" (``NoGpuError``, exit 2: the check cannot be
carried out). A driver older than the contract's minimum fails the check (exit 1).

Standard library only (with ``gpu.py``, ``runtime/nvidia_smi.py`` and the error classes), so that
``python3 -m imagesmith.gpu_host --lock imagesmith.lock`` runs on a GPU machine with nothing but
the checkout and Python (``scripts/gpu-check.sh``): the lock or image facts are read as JSON here,
not through ``lock/`` (which needs the spec's YAML parser).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import gpu
from .errors import ImagesmithError, VerifyError
from .findings import Findings
from .fsutil import read_bounded
from .runtime import nvidia_smi
from .runtime.untrusted import UntrustedInput, loads

QUERY = nvidia_smi.arguments(nvidia_smi.FIELDS)
QUERY_OLD = nvidia_smi.arguments(nvidia_smi.FIELDS_OLD)  # drivers without compute_cap


class NoGpuError(VerifyError):
    """The host check cannot be carried out: no NVIDIA GPU (or driver) on this machine (exit 2)."""


@dataclass(frozen=True)
class HostGpu:
    index: int
    driver: str
    compute_cap: str | None  # "9.0"; None: the driver cannot say
    name: str


@dataclass
class HostReport(Findings):
    contract: gpu.Contract
    gpus: tuple[HostGpu, ...]
    archs: dict | None = None  # the framework's architectures (lock/cuda.py), None: unknown

    def as_json(self) -> dict:
        return {
            "ok": self.ok,
            "contract": {**self.contract.as_dict(), "archs": self.archs},
            "gpus": [
                {"index": g.index, "driver": g.driver, "compute_cap": g.compute_cap, "name": g.name} for g in self.gpus
            ],
            **self.findings_json(),
        }


def _host_gpus(found: list[dict]) -> tuple[HostGpu, ...]:
    return tuple(HostGpu(i, g["driver"], g["compute_cap"], g["name"]) for i, g in enumerate(found))


def parse_smi(text: str, *, with_cap: bool = True) -> tuple[HostGpu, ...]:
    """The GPUs of nvidia-smi's answer to ``QUERY`` (``QUERY_OLD`` when not ``with_cap``)."""
    try:
        return _host_gpus(nvidia_smi.parse(text, nvidia_smi.FIELDS if with_cap else nvidia_smi.FIELDS_OLD))
    except nvidia_smi.Unreadable as exc:
        raise VerifyError(f"nvidia-smi printed a line this imagesmith cannot read: {str(exc)!r}") from exc


NO_GPU_HINT = (
    "run the host check on the machine that will run the image (with its NVIDIA driver installed); "
    "an accelerator-free image needs no host check"
)


def query(smi: str | None = None, *, timeout: float = 30.0) -> tuple[HostGpu, ...]:
    """This machine's GPUs, from ``nvidia-smi`` on PATH (``NoGpuError`` when there are none)."""
    smi = smi or shutil.which("nvidia-smi")
    if smi is None:
        raise NoGpuError("this machine has no NVIDIA GPU (no nvidia-smi on PATH)", hint=NO_GPU_HINT)
    try:
        found, why = nvidia_smi.query(smi, timeout=timeout)
    except nvidia_smi.Unreadable as exc:
        raise VerifyError(f"nvidia-smi printed a line this imagesmith cannot read: {str(exc)!r}") from exc
    if found is None:
        raise NoGpuError(f"this machine has no NVIDIA GPU ({why})", hint=NO_GPU_HINT)
    return _host_gpus(found)


def has_gpu() -> bool:
    """Whether ``nvidia-smi`` lists at least one GPU on this machine."""
    try:
        return bool(query())
    except ImagesmithError:
        return False


def check(contract: gpu.Contract, gpus: Iterable[HostGpu], archs: dict | None = None) -> HostReport:
    """Each GPU's driver against the contract's minimum, and its compute capability against the
    architectures the framework was compiled for (``archs``: ``{"framework", "version", "sm",
    "ptx"}``; None or empty: unknown, said in a note, not guessed); pure."""
    known = archs if archs and (archs.get("sm") or archs.get("ptx")) else None
    report = HostReport(contract, tuple(gpus), known)
    if contract.major is None:
        report.checks.append("the image ships no CUDA: nothing to check on this machine")
        return report
    need = contract.min_driver
    for g in report.gpus:
        cap = f", compute capability {g.compute_cap}" if g.compute_cap else ""
        if need is None:
            report.problems.append(f"CUDA {contract.cuda}: this imagesmith knows no minimum driver for it")
        elif gpu.version_key(g.driver) < gpu.version_key(need):
            report.problems.append(
                f"GPU {g.index} ({g.name}{cap}): driver {g.driver} is older than {need} "
                f"that CUDA {contract.cuda} in this image needs"
            )
        else:
            report.checks.append(
                f"GPU {g.index} ({g.name}{cap}): driver {g.driver} runs CUDA {contract.cuda} (needs {need} or newer)"
            )
        if known is None or not g.compute_cap:
            continue
        what = f"{known.get('framework')} {known.get('version')}"
        runs = gpu.runs_on(g.compute_cap, known.get("sm") or [], known.get("ptx") or [])
        if runs is None:
            report.problems.append(
                f"GPU {g.index} ({g.name}): compute capability {g.compute_cap} is not among the architectures "
                f"{what} in this image was compiled for ({gpu.archs_text(known)})"
            )
        else:
            report.checks.append(f"GPU {g.index} ({g.name}): compute capability {g.compute_cap} runs {what}'s {runs}")
    if report.gpus and known is None:
        report.notes.append(
            "compute capability not checked: the GPU architectures of this image's code are unknown "
            + (
                f"({archs.get('framework')} {archs.get('version')}: no GPU code found in its libraries)"
                if archs
                else "(no framework with compiled GPU code in the lock, e.g. CUDA libraries alone)"
            )
        )
    return report


def archs_from_json(data: Any, platform: str | None = None) -> dict | None:
    """The ``gpu.archs`` record of an imagesmith.lock (one section or ``platforms``) or an image
    facts file, else None."""
    if isinstance(data, dict) and isinstance(data.get("platforms"), dict):
        sections = data["platforms"]
        data = sections.get(platform) if platform else next(iter(sections.values()), None)
    section = data.get("gpu") if isinstance(data, dict) else None
    archs = section.get("archs") if isinstance(section, dict) else None
    return archs if isinstance(archs, dict) else None


def pins_from_json(data: Any, platform: str | None = None) -> list:
    """The pins (``name``, ``version``) of an imagesmith.lock (one section or ``platforms``), an
    image facts file or a parity manifest (``packages`` as a mapping), read with the standard library."""
    if isinstance(data, dict) and isinstance(data.get("platforms"), dict):
        sections = data["platforms"]
        if platform is None:
            if len(sections) != 1:
                raise ImagesmithError(
                    f"the lock has sections for {', '.join(sorted(sections))}",
                    hint="name one with --platform",
                )
            platform = next(iter(sections))
        if platform not in sections:
            raise ImagesmithError(
                f"the lock has no section for {platform}", hint=f"one of {', '.join(sorted(sections))}"
            )
        data = sections[platform]
    if isinstance(data, dict) and isinstance(data.get("manifest"), dict):
        data = data["manifest"]  # image facts: {"manifest": {...}, ...}
    packages = data.get("packages") if isinstance(data, dict) else None
    if isinstance(packages, list):
        items = [(p.get("name"), p.get("version")) for p in packages if isinstance(p, dict)]
    elif isinstance(packages, dict):
        items = [(name, (v or {}).get("version") if isinstance(v, dict) else v) for name, v in packages.items()]
    else:
        raise ImagesmithError(
            "no packages in this file: not an imagesmith.lock, image facts or parity manifest",
            hint="give imagesmith.lock or the image's imagesmith_image.json",
        )
    return [SimpleNamespace(name=n, version=v) for n, v in items if isinstance(n, str) and isinstance(v, str)]


def host_report(engine, ref: str, platform: str | None = None) -> HostReport:
    """``verify REF --host``: the contract of an image (its manifest, from its facts, read without pulling)
    or a lock, against this machine."""
    from .verify_source import open_source  # not at import time: ``-m imagesmith.gpu_host`` stays stdlib-only

    source = open_source(engine, ref, platform)
    if source.manifest is None:
        raise VerifyError(
            f"{source.name} carries no usable parity manifest: {'; '.join(source.problems) or 'none'}",
            hint="give an image imagesmith built, or its imagesmith.lock",
        )
    contract = gpu.check(pins_from_json(source.manifest), where=source.name)
    if source.lock is not None:
        from .lock.cuda import recorded_archs

        archs = recorded_archs(source.lock)
    else:
        from .layout import LABEL_GPU

        try:
            archs = archs_from_json(
                {"gpu": json.loads((source.info.labels if source.info else {}).get(LABEL_GPU) or "null")}
            )
        except ValueError:
            archs = None
    return check(contract, query() if contract.major is not None else (), archs)


def lines(report: HostReport) -> list[str]:
    """What a person reads: the contract, then one line per GPU."""
    c = report.contract
    out = []
    if c.major is not None:
        brought = "; ".join(f"CUDA {m}: {', '.join(names)}" for m, names in c.majors.items())
        out.append(f"contract: CUDA {c.cuda}, NVIDIA driver {c.min_driver} or newer ({brought})")
    out += [f"ok: {line}" for line in report.checks]
    out += [f"FAIL: {line}" for line in report.problems]
    out += [f"note: {line}" for line in report.notes]
    return out


MAX_INPUT = 32 << 20  # bytes of the lock or facts file read (a lock's own limit)
MAX_INPUT_ITEMS = 2_000_000  # JSON values in it (a large two-platform lock holds tens of thousands)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m imagesmith.gpu_host",
        description="Check this machine's NVIDIA driver against the CUDA of a lock or an image's facts.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--lock", type=Path, help="an imagesmith.lock")
    what.add_argument("--facts", type=Path, help="an image's facts file (imagesmith_image.json)")
    parser.add_argument("--platform", help="the lock section (a multi-platform lock)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    path = args.lock or args.facts
    try:
        try:
            # /dev/zero, a FIFO: refused unread; deep or bloated JSON: refused unparsed (runtime/untrusted.py)
            data = loads(read_bounded(path, MAX_INPUT), what=str(path), max_bytes=MAX_INPUT, max_items=MAX_INPUT_ITEMS)
        except (OSError, ValueError) as exc:
            raise ImagesmithError(
                str(exc) if isinstance(exc, UntrustedInput) else f"cannot read {path}: {exc}",
                hint="give imagesmith.lock or imagesmith_image.json",
            ) from exc
        contract = gpu.check(pins_from_json(data, args.platform), where=str(path))
        report = check(contract, query() if contract.major is not None else (), archs_from_json(data, args.platform))
    except ImagesmithError as exc:
        if args.json:
            print(json.dumps({"imagesmith_json": 1, "error": str(exc), "hint": exc.hint, "exit": exc.exit_code}))
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps({"imagesmith_json": 1, "host": report.as_json()}, sort_keys=True))
    else:
        for line in lines(report):
            print(line)
        print(f"{path}: {'this machine can run it' if report.ok else 'this machine can NOT run it'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
