"""A failed build's step mapped back to what the user wrote: the spec key it came from (its
packages, the distribution, the path), or the part imagesmith added (the sdist compilers), so
the error names something the user can act on (``engine.buildx.bake_failure`` asks)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Callable

from .layout import BUILD_MOUNTS
from .spec import Spec

# what the sdist-toolchain stage's apt step says when the compilers cannot be had (its template's
# ``apt_download`` failure text, quoted by the shell command BuildKit echoes)
_TOOLCHAIN_FAILED = re.compile(r"imagesmith: the compilers \(([^)]*)\) are not available for ([\w/.-]+)")

# shared's system-packages step: dpkg alone, from the system-packages stage's files (the template's
# ``dpkg_install``); the sdist-build stage's dpkg reads the compilers from another folder
_SHARED_DPKG = f"cd {BUILD_MOUNTS}/system-packages "


def describe_failure(
    spec: Spec, sdists: Mapping[str, Sequence[str]] | None = None
) -> Callable[[str], tuple[str, bool]]:
    """Map BuildKit's failing step back to the part of the spec it came from:
    (description, True) when a spec key is to blame, (the failing step, False) otherwise.
    ``sdists``: each platform's distributions built from source (``python_env.sdists_in``), named when the
    compilers they need (the ``sdist-toolchain`` stage, never a spec key) cannot be had."""

    def describe(log: str) -> tuple[str, bool]:
        failing = ""
        for line in log.splitlines():
            m = re.search(r"\[(?:[\w-]+ )?\d+/\d+\] (.*)", line)
            if m and ("ERROR" in line or "error" in line.lower()):
                failing = m.group(1)
        if not failing:
            m = re.search(r'ERROR: failed to solve: process "(.*?)" did not complete', log, re.S)
            failing = m.group(1) if m else ""
            if not failing:
                m = re.search(r"ERROR: failed to solve: (.*)", log)
                failing = m.group(1) if m else ""
        toolchain = _TOOLCHAIN_FAILED.search(failing)  # the failing step's own text: not another stage's
        if "apt-get" in failing and toolchain:
            platform = toolchain.group(2)
            named = ", ".join((sdists or {}).get(platform) or sorted({n for v in (sdists or {}).values() for n in v}))
            needs = f"needed by {named}" if named else "needed by a locked distribution published only as source"
            return f"the sdist compilers ({toolchain.group(1)} for {platform}, {needs})", False
        # apt in the system-packages stage, or dpkg installing its downloads in shared
        if "apt-get" in failing or _SHARED_DPKG in failing:
            pkgs = re.findall(r"Unable to locate package (\S+)|E: Version '([^']+)' for '([^']+)'", log)
            named = ", ".join(sorted({p[0] or p[2] for p in pkgs})) if pkgs else ", ".join(spec.system_packages)
            return f"system_packages ({named})", True
        if spec.project is not None and ".project build " in failing:
            if "THESE PACKAGES DO NOT MATCH THE HASHES" in log:
                return (
                    f"install_project ({spec.project.name}: a build backend wheel does not match its locked hash)",
                    True,
                )
            return f"install_project ({spec.project.name}: building its wheel failed)", True
        if spec.project is not None and ".project install " in failing:
            return f"install_project ({spec.project.name}: installing its wheel failed)", True
        m = re.search(r"the installer wheel \S+ does not match its locked hash \(([^)]+)\)", log)
        if m:
            return f"the installer ({m.group(1)}: its wheel does not match its locked hash)", False
        if "pip" in failing:
            m = re.search(r"(?:Hash mismatch for|Failed to (?:download|install)) `([A-Za-z0-9_.-]+==[^\s`]+)`", log)
            if m:  # uv's words
                if "Hash mismatch for" in log:
                    return f"requirements ({m.group(1)}: a wheel does not match its locked hash)", True
                return f"requirements ({m.group(1)}: its wheel could not be installed)", True
            m = re.search(r"(?:for|of|match) (?:the )?(?:package |requirement )?([A-Za-z0-9_.-]+==[^\s:]+)", log)
            dist = m.group(1) if m else "one of the locked distributions"
            if "THESE PACKAGES DO NOT MATCH THE HASHES" in log:
                m = re.search(r"([A-Za-z0-9_.-]+==[^\s:]+) from ", log)
                dist = m.group(1) if m else dist
                return f"requirements ({dist}: a wheel does not match its locked hash)", True
            return f"requirements ({dist})", True
        for key, paths in (("preprocessing", spec.preprocessing), ("source", spec.source)):
            for path in paths:
                if path in failing:
                    return f"{key} ({path})", True
        return failing[:120], False

    return describe
