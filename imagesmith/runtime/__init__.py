"""imagesmith's in-image code: one package, standard library only, delivered one way.

Everything that runs inside an image (or inside a build stage) lives in this folder. The host
builds it into a small reproducible wheel, ``imagesmith-runtime`` (``imagesmith/runtime_wheel.py``:
version = content digest, fixed zip times, sorted entries), which ``imagesmith render`` and
``imagesmith build`` write to ``.imagesmith/`` beside the Dockerfile. Inside images it is
importable as ``imagesmith_runtime``; on the host, as ``imagesmith.runtime`` (the host imports it
only to build the wheel, to test it, and for the few stdlib functions that must be the very same
code on both sides: the parity digest, the stamp check, the preprocessing digest, the error root).

Modules import each other relatively only, so the same files work under both names.

``MODULES`` below is the one registry of what goes where and how each module is run; the wheel
builder refuses a module that is not listed (and a listed one that is missing).
"""

PACKAGE = "imagesmith_runtime"  # the import name inside images
DISTRIBUTION = "imagesmith-runtime"  # the wheel's distribution name

# module -> where it runs and how it is started
MODULES = {
    "__init__": "this registry (imported first by everything, so it holds data only)",
    "__main__": "ENTRYPOINT of train and serve: python -m imagesmith_runtime {train|serve} -- COMMAND",
    "errors": "the one error root, ImagesmithError (imagesmith.errors re-exports it on the host)",
    "parity": "the parity manifest and digest (imagesmith.parity re-exports it on the host)",
    "stamp": "the model stamp: written by train, checked by serve and by `verify --model`",
    "seed": "imported at every interpreter start by imagesmith.pth: seeds random, numpy, torch, tensorflow",
    "files": "content digests and atomic writes",
    "untrusted": "bounded reads of files and JSON someone else wrote (stamps, labels, reports), shape-checked",
    "wheel": "reproducible wheel files (the preprocessing wheel, and this package's own wheel)",
    "preprocessing": "stage preprocessing-build: python -m imagesmith_runtime.preprocessing (from the wheel)",
    "project": "stage project-build and the last layer: python -m imagesmith_runtime.project (the project's own wheel)",
    "sdists": "stage sdist-build and the install step: python -m imagesmith_runtime.sdists (from the wheel)",
    "bytecode": "the install step: python -m imagesmith_runtime.bytecode (the venv's .pyc; a wheel's own left as installed)",
    "heavy": "the install step: python -m imagesmith_runtime.heavy (heavy distributions moved to folders of their own: one layer each)",
    "installer": "the install step: python -m imagesmith_runtime.installer (the locked uv wheel, checked and unpacked)",
    "debs": "stage system-packages: python -m imagesmith_runtime.debs (the order dpkg installs the downloaded system packages in)",
    "tree": "stages user-files and project-setup: python -m imagesmith_runtime.tree (folders mirrored from the target, the user's account lines)",
    "probe": "verify/diff: the host sends its own copy, run with python -I -S (it trusts nothing in the image)",
    "signoff_probe": "signoff: python -m imagesmith_runtime.signoff_probe in the serve container; hardware on the host",
    "nvidia_smi": "signoff_probe's GPUs and the host check (imagesmith.gpu_host): nvidia-smi asked and read",
}

# files installed at the root of site-packages (not in the package)
ROOT_FILES = {
    "imagesmith.pth": "runs seed.activate() when any Python process of the venv starts",
}

# written next to the package at build time by the Dockerfile (not in the wheel: it depends on the spec)
FACTS_FILE = "imagesmith_image.json"
