"""A fake ``nvidia-smi`` for machines without a GPU: an executable put first on PATH that answers
the real tool's query formats for the GPUs it is given.

- ``--query-gpu=F1,F2,... --format=csv[,noheader][,nounits]``: one line per GPU, fields joined by
  ", " in the order asked, a header line of the field names first unless ``noheader`` (with units
  in brackets, as nvidia-smi prints them: ``memory.total [MiB]``); a field the driver does not
  know prints ``Field "F" is not a valid field to query.`` and exits 2, as a real one does (so
  ``compute_cap`` on a driver older than R510);
- ``-L``: ``GPU 0: NAME (UUID: GPU-...)``;
- no arguments: the summary table's head, with ``Driver Version`` and ``CUDA Version``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class FakeGpu:
    name: str
    driver: str
    compute_cap: str
    memory_mib: int = 81559


# The CUDA version a driver's summary table names (the newest it runs), by driver major
_CUDA_OF_DRIVER = ((580, "13.0"), (575, "12.9"), (550, "12.4"), (535, "12.2"), (525, "12.0"), (470, "11.4"))
_COMPUTE_CAP_SINCE = 510  # drivers before R510 do not know the compute_cap field

SCRIPT = r"""#!{python}
import json, sys
GPUS = json.loads({gpus!r})
CUDA = {cuda!r}
OLD = {old!r}
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(" ".join(args) + "\n")
if not GPUS:
    print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
          "Make sure that the latest NVIDIA driver is installed and running.")
    sys.exit(9)
units = {{"memory.total": "MiB"}}
def value(g, i, field, nounits):
    known = {{"name": g["name"], "driver_version": g["driver"], "compute_cap": g["compute_cap"],
             "index": str(i), "uuid": "GPU-%08x-0000-0000-0000-000000000000" % i,
             "memory.total": str(g["memory_mib"]) + ("" if nounits else " MiB")}}
    return known[field]
if args == ["-L"]:
    for i, g in enumerate(GPUS):
        print("GPU %d: %s (UUID: GPU-%08x-0000-0000-0000-000000000000)" % (i, g["name"], i))
    sys.exit(0)
if not args:
    print("+-----------------------------------------------------------------------------------------+")
    print("| NVIDIA-SMI %-18s Driver Version: %-14s CUDA Version: %-9s|" % (GPUS[0]["driver"], GPUS[0]["driver"], CUDA))
    print("|-----------------------------------------+------------------------+----------------------+")
    sys.exit(0)
query = [a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")]
fmt = [a.split("=", 1)[1] for a in args if a.startswith("--format=")]
if not query or not fmt or not fmt[0].startswith("csv"):
    print("Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.")
    sys.exit(2)
fields = query[0].split(",")
options = fmt[0].split(",")[1:]
for f in fields:
    if f not in ("name", "driver_version", "compute_cap", "index", "uuid", "memory.total") or (OLD and f == "compute_cap"):
        print('Field "%s" is not a valid field to query.' % f)
        print()
        sys.exit(2)
if "noheader" not in options:
    print(", ".join(f + (" [%s]" % units[f] if f in units else "") for f in fields))
for i, g in enumerate(GPUS):
    print(", ".join(value(g, i, f, "nounits" in options) for f in fields))
"""


def install(bindir: Path, gpus: list[FakeGpu]) -> Path:
    """An executable ``bindir/nvidia-smi`` answering for ``gpus`` (none: the "couldn't communicate
    with the NVIDIA driver" failure); every call's arguments go to ``bindir/nvidia-smi.log``."""
    bindir.mkdir(parents=True, exist_ok=True)
    driver_major = int(gpus[0].driver.split(".")[0]) if gpus else 0
    cuda = next((c for major, c in _CUDA_OF_DRIVER if driver_major >= major), "11.0")
    smi = bindir / "nvidia-smi"
    smi.write_text(
        SCRIPT.format(
            python=sys.executable,
            gpus=json.dumps([asdict(g) for g in gpus]),
            cuda=cuda,
            old=driver_major < _COMPUTE_CAP_SINCE,
            log=str(bindir / "nvidia-smi.log"),
        )
    )
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return smi


def path_with(bindir: Path) -> str:
    """PATH with ``bindir`` first, then the rest of this process's PATH."""
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
