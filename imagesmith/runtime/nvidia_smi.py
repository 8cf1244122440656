"""nvidia-smi, asked and read: the one place that knows how this machine's NVIDIA GPUs are queried
and what the answer looks like. Standard library only: the signoff hardware record
(``signoff_probe.py``, in the serve container and on the host) and the host check
(``imagesmith/gpu_host.py``) both read the GPUs through it.

``nvidia-smi --query-gpu=driver_version,compute_cap,memory.total,name --format=csv,noheader``
prints one line per GPU, e.g. ``580.82.07, 9.0, 81559 MiB, NVIDIA H100 80GB HBM3`` (the name
last: it is the only field that may hold a comma; ``[N/A]`` where a field has no value). Drivers
before R510 refuse ``compute_cap`` (``Field "compute_cap" is not a valid field to query.``): the
query then runs again without it, and the capability is None.
"""

import subprocess

FIELDS = ("driver_version", "compute_cap", "memory.total", "name")
FIELDS_OLD = ("driver_version", "memory.total", "name")  # drivers without compute_cap


def arguments(fields=FIELDS):
    """nvidia-smi's arguments for ``fields``."""
    return ["--query-gpu=" + ",".join(fields), "--format=csv,noheader"]


class Unreadable(ValueError):
    """A line of nvidia-smi's answer that is not in the format asked for (the line, shortened)."""


def _value(text):
    return text if text[:1].isdigit() else None  # "[N/A]", "[Not Supported]"


def parse(text, fields=FIELDS):
    """The GPUs of an answer to ``arguments(fields)``, in nvidia-smi's order, each
    ``{"driver", "compute_cap", "memory", "name"}`` (``compute_cap`` and ``memory`` None when not
    asked or not available)."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",", len(fields) - 1)]
        if len(parts) != len(fields) or not parts[0][:1].isdigit() or not parts[-1]:
            raise Unreadable(line.strip()[:120])
        row = dict(zip(fields, parts))
        gpus.append(
            {
                "driver": row["driver_version"],
                "compute_cap": _value(row.get("compute_cap", "")),
                "memory": _value(row.get("memory.total", "")),
                "name": row["name"],
            }
        )
    return gpus


def query(smi="nvidia-smi", timeout=30.0):
    """``(gpus, None)`` from ``smi`` (``parse``; ``Unreadable`` propagates), or ``(None, why)`` when
    it gave no GPUs: it did not run (``why`` names the OS error), or failed or listed none (its
    first line: "No devices were found", "couldn't communicate with the NVIDIA driver", ...)."""
    out, code = "", 0
    for fields in (FIELDS, FIELDS_OLD):
        try:
            done = subprocess.run(
                [smi, *arguments(fields)], capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, "nvidia-smi did not run: " + str(exc)
        out, code = (done.stdout + done.stderr).strip(), done.returncode
        if code == 0 and out:
            return parse(done.stdout, fields), None
        if not ("compute_cap" in out and "not a valid field" in out):
            break
    return None, "nvidia-smi: " + (out.splitlines()[0][:200] if out else "exit " + str(code))
