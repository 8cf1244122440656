"""The signoff helper: standard library only, run INSIDE an image from the ``imagesmith-runtime``
wheel (and imported on the host for the hardware record). ``signoff.py`` runs it through the
serve runtime, with the image's Python::

    python -m imagesmith_runtime.signoff_probe '{"mode": "predict", "predict": "app.predict:predict",
                                               "samples": "/run/imagesmith-signoff/samples.jsonl"}'
    python -m imagesmith_runtime.signoff_probe '{"mode": "hardware"}'

``predict`` imports ``module:function`` (from the image's working directory, ``/app``), calls it
once with the list of samples (one JSON value per line of the samples file), and prints one JSON
object on stdout: ``{"outputs": [[float, ...], ...], "hardware": {...}}``. Each output row is
what the function returned for that sample, as a list of floats (a scalar becomes a list of
one). The hardware is read AFTER the call, so the BLAS/OpenMP libraries the function loaded
are in the process's memory map.

``hardware`` prints only ``{"hardware": {...}}`` (no import of the project): the host's view,
which ``verify --signoff`` compares with the one signed off on.

The hardware record (keys sorted, lists sorted)::

    {"cpu": {"model": str|null, "flags": [str...] (instruction-set flags of interest),
             "logical_cpus": int, "usable_cpus": int},
     "memory_bytes": int|null,
     "gpus": [{"name", "driver", "memory", "compute_cap"}...], "cuda": str|null,
     "libraries": [{"kind": "blas"|"openmp"|..., "path": str, "version": str|null, "threads": int|null}...]}

What the project's code prints goes to stderr (file descriptor 1 is pointed there while it
runs): the result is the only line on stdout. A result that is not one flat row of numbers per
sample (a string label, None, a dict, a nested list) is refused naming the first such value.

Exit codes: 0 printed; 2 bad options, unreadable samples, or the function failed or returned
what cannot be compared (the reason, one line, on stderr).
"""

import json
import os
import re
import subprocess
import sys
import sysconfig

from . import nvidia_smi

# Instruction-set flags that change which kernels BLAS and friends pick.
ISA_FLAGS = re.compile(
    r"^(sse\d?|sse4_[12]|ssse3|avx.*|fma4?|f16c|amx.*|bmi[12]|adx|sha_ni|vnni|"
    r"avx_vnni|neon|asimd.*|sve.*|fp16|popcnt|aes|pclmulqdq)$"
)
LIBRARY_KINDS = (
    ("openblas", "blas"),
    ("mkl_", "blas"),
    ("libblis", "blas"),
    ("libblas", "blas"),
    ("liblapack", "lapack"),
    ("libcublas", "cublas"),
    ("libcudnn", "cudnn"),
    ("libgomp", "openmp"),
    ("libiomp", "openmp"),
    ("libomp", "openmp"),
)


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def cpu():
    info = _read("/proc/cpuinfo")
    model = re.search(r"^(?:model name|Model|cpu model)\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", info, re.M)
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    return {
        "model": model.group(1).strip() if model else None,
        "flags": sorted({f for f in (flags.group(1).split() if flags else []) if ISA_FLAGS.match(f)}),
        "logical_cpus": os.cpu_count() or 0,
        "usable_cpus": usable,
    }


def memory_bytes():
    m = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return int(m.group(1)) * 1024 if m else None


def gpus():
    """(gpus, cuda version) from nvidia-smi (``nvidia_smi.query``: driver, compute capability,
    memory, name); ([], None) where there is none or its answer cannot be read."""
    try:
        found, _ = nvidia_smi.query(timeout=30)
    except nvidia_smi.Unreadable:
        found = None
    if not found:
        return [], None
    found = [
        {"name": g["name"], "driver": g["driver"], "memory": g["memory"], "compute_cap": g["compute_cap"]}
        for g in found
    ]
    cuda = None
    try:
        head = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"CUDA Version:\s*([\d.]+)", head)
        cuda = m.group(1) if m else None
    except (OSError, subprocess.SubprocessError):
        pass
    return sorted(found, key=lambda g: (g["name"], g["driver"], g["compute_cap"] or "")), cuda


def libraries():
    """The numeric libraries this process has loaded: threadpoolctl's view when it is
    installed (version, threads), else the shared objects in /proc/self/maps."""
    found = {}
    try:
        import threadpoolctl  # noqa: F401  (scikit-learn depends on it)

        for info in threadpoolctl.threadpool_info():
            path = info.get("filepath") or ""
            kind = info.get("user_api") or "unknown"
            found[path] = {
                "kind": kind,
                "path": path,
                "version": info.get("version"),
                "threads": info.get("num_threads"),
            }
    except Exception:  # not installed, or it could not read a library: the maps still answer
        pass
    for line in _read("/proc/self/maps").splitlines():
        parts = line.split()
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue
        path = parts[5]
        name = os.path.basename(path)
        for needle, kind in LIBRARY_KINDS:
            if needle in name and path not in found:
                found[path] = {"kind": kind, "path": path, "version": None, "threads": None}
    return sorted(found.values(), key=lambda d: (d["kind"], d["path"]))


def hardware():
    found, cuda = gpus()
    return {"cpu": cpu(), "memory_bytes": memory_bytes(), "gpus": found, "cuda": cuda, "libraries": libraries()}


class Refused(Exception):
    """The function or the samples cannot be signed off on: the reason, one line."""


def _number(value, where):
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):  # numpy or torch scalars, 0-d arrays
        plain = value.tolist()
        if not isinstance(plain, (list, tuple)):
            value = plain
    if isinstance(value, (int, float)):  # bool is an int: True is 1.0
        try:
            return float(value)
        except OverflowError:
            raise Refused("%s is an integer too large for a float" % where) from None
    if isinstance(value, str):
        raise Refused(
            "%s is the string %r: signoff compares numbers, within a tolerance; return the class scores "
            "(a classifier's predict_proba, not its predict) or the label's index" % (where, value[:40])
        )
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        raise Refused(
            "%s is a list inside the row: each sample's row is a flat list of numbers "
            "(flatten it: numpy's .ravel().tolist())" % where
        )
    raise Refused("%s is %s, not a number" % (where, "None" if value is None else type(value).__name__))


def _row(value, where):
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_number(v, "%s value %d" % (where, j)) for j, v in enumerate(value)]
    if isinstance(value, dict):
        raise Refused(
            "%s is a dict (keys %s): each sample's row is a list of numbers, e.g. [row['score']]"
            % (where, ", ".join(sorted(map(str, value))[:5]))
        )
    return [_number(value, where)]


def rows(result, name, count):
    """The function's result as one list of floats per sample, or Refused naming the first
    value that is not a number (a string label, None, a dict, a nested list)."""
    if hasattr(result, "to_numpy") and not hasattr(result, "tolist"):  # a pandas DataFrame: a row per sample
        result = result.to_numpy()  # (iterating one yields its column names)
    if hasattr(result, "tolist"):
        result = result.tolist()
    if result is None or isinstance(result, (str, bytes, dict, int, float)):
        what = "None" if result is None else type(result).__name__
        raise Refused("%s returned %s: it returns one row of numbers for each sample, in a list" % (name, what))
    try:
        result = iter(result)
    except TypeError as exc:
        raise Refused("%s returned %s, not a list of rows" % (name, type(result).__name__)) from exc
    outputs = [_row(r, "the output for sample %d" % i) for i, r in enumerate(result)]
    if len(outputs) != count:
        raise Refused("%s returned %d outputs for %d samples" % (name, len(outputs), count))
    return outputs


def sample_lines(text):
    """(line number, line) of each sample in a samples file's text, as the helper and the host's
    ``batch.read_samples`` both read it: a UTF-8 BOM skipped, lines ending at \\n only (a U+2028
    or \\x85 inside a JSON string is text, which ``str.splitlines`` would split at), blank lines
    ignored."""
    text = text[1:] if text.startswith("\ufeff") else text
    return [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def read_samples(path):
    """One JSON value per line (``sample_lines``)."""
    with open(path, encoding="utf-8", newline="") as fh:
        text = fh.read()
    samples = []
    for number, line in sample_lines(text):
        try:
            samples.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise Refused("samples line %d is not JSON: %s" % (number, str(exc)[:160])) from exc
    return samples


def _raised(name, exc):
    """One line for an exception out of the user's code, with where it was raised."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    # the project's own line that led there: not Python's or an installed library's (nor this file)
    paths = sysconfig.get_paths()
    installed = tuple({paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths})
    own = [f for f in frames if not f.filename.startswith(("<",) + installed) and f.filename != __file__]
    frame = (own or frames or [None])[-1]
    at = " (%s, line %s)" % (frame.filename, frame.lineno) if frame else ""
    text = str(exc).strip().splitlines()
    return "%s raised %s: %s%s" % (name, type(exc).__name__, text[0][:300] if text else "", at)


def _attribute(module, path, name):
    """``module``'s object at the dotted ``path`` (an entry point's ``module:object.method``);
    None when one is missing. A property that raises is the project's error, said in one line."""
    found = module
    for part in path.split("."):
        try:
            found = getattr(found, part, None)
        except Exception as exc:
            raise Refused(_raised("reading %s" % name, exc)) from exc
        if found is None:
            return None
    return found


def predict(options):
    import importlib

    name = options["predict"]
    module_name, _, func_name = name.partition(":")
    samples = read_samples(options["samples"])
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Refused("cannot import %s: %s" % (name, exc)) from exc
    except SystemExit as exc:
        raise Refused("importing %s called sys.exit(%r)" % (module_name, exc.code)) from exc
    except Exception as exc:
        raise Refused(_raised("importing " + module_name, exc)) from exc
    func = _attribute(module, func_name, name)
    if not callable(func):
        raise Refused("cannot import %s: %s has no function %s" % (name, module_name, func_name))
    count = len(samples)  # before the call: a function may consume its list (del samples[:32] per batch)
    try:
        result = func(samples)
        return rows(result, name, count)
    except Refused:
        raise
    except SystemExit as exc:
        raise Refused("%s called sys.exit(%r) instead of returning" % (name, exc.code)) from exc
    except Exception as exc:
        raise Refused(_raised(name, exc)) from exc


def main(argv):
    try:
        options = json.loads(argv[0]) if argv else {}
    except ValueError:
        options = {}
    mode = options.get("mode")
    if mode not in ("predict", "hardware"):
        sys.stderr.write("imagesmith signoff helper: mode must be predict or hardware\n")
        return 2
    # The result is the one line on the real stdout: what the user's code prints (a debugging
    # print, a library's progress bar, C code's printf) goes to stderr, fd 1 included.
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        out = {"outputs": predict(options)} if mode == "predict" else {}
        out["hardware"] = hardware()
    except Refused as exc:
        sys.stderr.write("imagesmith signoff helper: %s\n" % exc)
        return 2
    finally:
        sys.stdout.flush()
    with os.fdopen(result_fd, "w") as result:
        result.write(json.dumps(out, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
