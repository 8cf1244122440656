"""System packages installed by dpkg alone, in the order apt chose on the build platform.

Standard library only (part of the ``imagesmith-runtime`` wheel): the build runs it from that
wheel as ``python3 -m imagesmith_runtime.debs``. The ``system-packages`` stage runs in
``builder`` (natively on the build platform when the lock allows it): apt, told the target's
architecture and reading the TARGET base's own dpkg status and sources, resolves the locked
``name=version`` pins, downloads the closure's ``.deb`` files and simulates the install. The
target then runs only dpkg, offline, in apt's order, so the maintainer scripts run for real on
the target but apt's lists are never fetched, parsed or verified there.

``plan ARCHIVES``
    reads ``apt-get install --simulate``'s output on stdin and writes, to stdout, one dpkg
    invocation per line: ``--no-triggers --unpack FILE...`` (consecutive ``Inst`` lines, their
    ``.deb`` files in ARCHIVES, by base name) or ``--configure NAME:ARCH...`` (consecutive
    ``Conf`` lines, which also run the triggers the unpacking left pending).
    Refuses a plan that removes a package of the base (``Remv``), an ``Inst`` without exactly
    one downloaded file, and a downloaded file nothing installs. Prints nothing when there is
    nothing to install.

The target runs each line as ``dpkg LINE`` from ARCHIVES (file and package names hold no
space or shell character: Debian policy's names, versions and architectures).
"""

import os
import re
import sys

# "Inst NAME [OLD] (NEW RELEASE [ARCH])", "Conf NAME (NEW RELEASE [ARCH])", "Remv NAME [OLD]"
_LINE = re.compile(r"^(Inst|Conf|Remv) (\S+)(?: \[[^\]]*\])?(?: \((\S+) .*\[([^\]]+)\]\))?")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+~%_:-]*$")


class PlanError(Exception):
    pass


def actions(simulation):
    """[(action, name, version, arch)] of apt's simulated install, in its order."""
    out = []
    for line in simulation.splitlines():
        m = _LINE.match(line)
        if m:
            out.append(m.groups())
    return out


def plan(simulation, archives):
    """The dpkg invocations (lists of arguments) that install what ``simulation`` says, with the
    ``.deb`` files in ``archives`` (their base names)."""
    files = sorted(f for f in archives if f.endswith(".deb"))
    used = set()
    groups = []
    for action, name, version, arch in actions(simulation):
        if action == "Remv":
            raise PlanError(f"installing the system packages would remove {name} from the base")
        if not (version and arch and _SAFE.match(name) and _SAFE.match(version) and _SAFE.match(arch)):
            raise PlanError(f"apt's plan has a line imagesmith cannot read: {action} {name}")
        if action == "Inst":
            found = [f for f in files if f.startswith(name + "_") and f.endswith("_" + arch + ".deb")]
            found = [f for f in found if _version_of(f) == version]
            if len(found) != 1:
                raise PlanError(f"no single downloaded file for {name} {version} ({arch}): {found}")
            used.add(found[0])
            word, arg = "--unpack", found[0]  # triggers wait for the configure that follows
        else:
            word, arg = "--configure", name if arch == "all" else f"{name}:{arch}"
        if groups and groups[-1][0] == word:
            groups[-1][1].append(arg)
        else:
            groups.append((word, [arg]))
    unused = sorted(set(files) - used)
    if unused:
        raise PlanError(f"downloaded but not in apt's plan: {', '.join(unused)}")
    # as apt runs dpkg: unpacking defers the triggers, configuring runs those pending at its end
    return [(["--no-triggers"] if word == "--unpack" else []) + [word, *args] for word, args in groups]


def _version_of(filename):
    """A .deb file's version as apt names it (apt's file names write the epoch's colon as %3a)."""
    parts = filename[: -len(".deb")].split("_")
    return parts[1].replace("%3a", ":") if len(parts) == 3 else None


def main(argv):
    if len(argv) != 2 or argv[0] != "plan":
        print("usage: python -m imagesmith_runtime.debs plan ARCHIVES < SIMULATION", file=sys.stderr)
        return 2
    try:
        lines = plan(sys.stdin.read(), os.listdir(argv[1]))
    except PlanError as exc:
        print(f"imagesmith: system packages: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(" ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
