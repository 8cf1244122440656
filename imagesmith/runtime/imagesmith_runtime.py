"""imagesmith's runtime inside the image: standard library only, no network.

The image's ENTRYPOINT is ``python -m imagesmith_runtime ROLE -- COMMAND...``. It makes sure the
seed and determinism settings recorded in the parity manifest are in force, then runs the
user's command: ``train`` as a child process (so it can act when training succeeds), ``serve``
by replacing itself with the command (so signals reach the server directly).
"""

import os
import sys

ROLES = ("train", "serve")


def _usage(message):
    sys.stderr.write("imagesmith runtime: %s\nusage: python -m imagesmith_runtime {train|serve} -- COMMAND...\n" % message)
    return 2


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ROLES:
        return _usage("the first argument must be train or serve")
    role, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if not rest:
        return _usage("no command to run")
    seed = os.environ.get("IMAGESMITH_SEED")
    if seed is not None:
        os.environ["PYTHONHASHSEED"] = seed
    os.environ["IMAGESMITH_ROLE"] = role
    if role == "serve":
        try:
            os.execvp(rest[0], rest)
        except OSError as exc:
            sys.stderr.write("imagesmith runtime: cannot start %r: %s\n" % (rest[0], exc))
            return 127
    import subprocess

    try:
        return subprocess.call(rest)
    except OSError as exc:
        sys.stderr.write("imagesmith runtime: cannot start %r: %s\n" % (rest[0], exc))
        return 127


if __name__ == "__main__":
    sys.exit(main())
