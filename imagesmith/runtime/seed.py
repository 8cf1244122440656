"""Seed every Python process in the image, lazily: standard library only, imported at start-up.

``imagesmith.pth`` (at the root of the venv's site-packages) runs ``activate()`` when any
Python process of the venv starts: the train or serve command, every process it starts (a
``subprocess``, a ``multiprocessing`` worker, uvicorn's ``--workers``), whatever launched it.
``PYTHONHASHSEED`` cannot be set from inside a running interpreter; the image's ENV and the
runtime (``imagesmith_runtime``) set it before any of these processes start.

``activate()`` reads the seed from ``IMAGESMITH_SEED`` (absent or empty: do nothing) and
``IMAGESMITH_DETERMINISM`` (``on``/``off``), imports nothing heavy itself, and puts a finder at
the front of ``sys.meta_path`` that waits for these modules to be imported by the program:

    random        random.seed(seed)
    numpy.random  numpy.random.seed(seed)          (the legacy global state; np.random.rand etc.)
    torch         torch.manual_seed(seed); with determinism on also
                  torch.use_deterministic_algorithms(True) and cudnn deterministic, no benchmark
    tensorflow    tf.random.set_seed(seed); with determinism on also
                  tf.config.experimental.enable_op_determinism()

When one of them is imported, the finder lets the normal finders locate it, wraps its loader
so that the seeding runs right after the module's own code, then puts the original loader back
on the module. A module that is never imported is never loaded: a command that imports nothing
does not pay for NumPy. A module already imported when ``activate()`` runs is seeded at once.

Not covered: generators the program makes itself without a seed (``numpy.random.default_rng()``,
``random.Random()``); interpreters started with ``-S`` (no site, so no ``.pth``); processes given
a fresh environment without ``IMAGESMITH_SEED`` and ``PYTHONHASHSEED`` (``subprocess.run(env={})``);
``-I``/``-E`` interpreters ignore ``PYTHONHASHSEED`` (they are still seeded, string hashes are not).
"""

import os
import sys


def _seed_random(module, seed, deterministic):
    module.seed(seed)


def _seed_numpy(module, seed, deterministic):
    module.seed(seed)


def _seed_torch(module, seed, deterministic):
    module.manual_seed(seed)
    if deterministic:
        module.use_deterministic_algorithms(True)
        backends = getattr(module, "backends", None)
        cudnn = getattr(backends, "cudnn", None)
        if cudnn is not None:
            cudnn.deterministic = True
            cudnn.benchmark = False


def _seed_tensorflow(module, seed, deterministic):
    module.random.set_seed(seed)
    if deterministic:
        module.config.experimental.enable_op_determinism()


HOOKS = {
    "random": _seed_random,
    "numpy.random": _seed_numpy,
    "torch": _seed_torch,
    "tensorflow": _seed_tensorflow,
}


def _warn(name, exc):
    try:
        sys.stderr.write("imagesmith: could not seed %s: %s: %s\n" % (name, type(exc).__name__, exc))
    except Exception:
        pass


class _SeedingLoader:
    """Delegates to the real loader; runs the seeding after the module's code."""

    def __init__(self, loader, name, finder):
        self._loader = loader
        self._name = name
        self._finder = finder

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        try:
            self._loader.exec_module(module)
        finally:
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = self._loader
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.loader is self:
                spec.loader = self._loader
        self._finder.fire(self._name, module)

    def __getattr__(self, attr):  # only called for what the class does not define
        if attr == "_loader":
            raise AttributeError(attr)
        return getattr(self._loader, attr)


class SeedFinder:
    """A meta path finder that finds nothing itself: it wraps the loaders of the hooked modules."""

    def __init__(self, seed, deterministic, hooks):
        self.seed = seed
        self.deterministic = deterministic
        self.pending = dict(hooks)
        self._busy = set()

    def fire(self, name, module):
        hook = self.pending.pop(name, None)
        if hook is None:
            return
        try:
            hook(module, self.seed, self.deterministic)
        except Exception as exc:  # seeding must never break the user's import
            _warn(name, exc)
        if not self.pending:
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass

    def find_spec(self, name, path=None, target=None):
        if name not in self.pending or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _SeedingLoader(spec.loader, name, self)
        return spec


def activate(environ=None):
    """Install the seeding for this process (see the module docstring). Never raises."""
    try:
        environ = os.environ if environ is None else environ
        raw = environ.get("IMAGESMITH_SEED", "")
        if not raw:
            return None
        seed = int(raw)
        deterministic = environ.get("IMAGESMITH_DETERMINISM") == "on"
        for finder in sys.meta_path:
            if isinstance(finder, SeedFinder):
                return finder
        finder = SeedFinder(seed, deterministic, HOOKS)
        for name in list(finder.pending):
            if name in sys.modules:
                finder.fire(name, sys.modules[name])
        if finder.pending:
            sys.meta_path.insert(0, finder)
        return finder
    except Exception as exc:
        _warn("this process", exc)
        return None
