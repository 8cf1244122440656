"""imagesmith's runtime inside the image: standard library only, no network.

The image's ENTRYPOINT is ``python -m imagesmith_runtime ROLE -- COMMAND...``. Before the
user's command runs it

1. reads ``imagesmith_image.json`` (written into the venv's folder, ``sys.prefix``, at build
   time: the image's parity, manifest, preprocessing wheel, seed and artifacts path);
2. puts the seed in force for every Python process the command starts: ``PYTHONHASHSEED`` and
   ``IMAGESMITH_SEED`` (read by ``imagesmith.pth`` / ``imagesmith_runtime.seed`` at each interpreter's
   start), ``IMAGESMITH_DETERMINISM``; values given with ``docker run -e`` are overridden,
   because the seed is part of the parity;
3. ``train``: removes a stamp left by an earlier run, runs the command as a child (forwarding
   signals), and when it exits 0 writes ``imagesmith-stamp.json`` over what it wrote to the
   artifacts folder (see ``stamp.py``). The image digest comes from
   ``IMAGESMITH_IMAGE_DIGEST`` (``imagesmith run`` passes it in; a container cannot see it);
4. ``serve``: checks the model in the artifacts folder against the image
   (``stamp.check_model``) and refuses to start, exit 3, naming each difference,
   unless ``IMAGESMITH_ALLOW_MISMATCH=1`` is set, which is logged loudly; then replaces itself
   with the command (so signals reach the server directly).

Exit codes: the command's own; 2 for a runtime usage or set-up error; 3 when serve refuses;
127 when the command cannot be started.
"""

import os
import sys

from . import stamp

ROLES = ("train", "serve")
REFUSED = 3
VENV = sys.prefix  # the venv whose Python runs this module: the image facts are in its folder


def _log(message):
    sys.stderr.write("imagesmith: %s\n" % message)
    sys.stderr.flush()


def _usage(message):
    sys.stderr.write(
        "imagesmith runtime: %s\nusage: python -m imagesmith_runtime {train|serve} -- COMMAND...\n" % message
    )
    return 2


def seed_environment(facts, environ, role):
    """Set the variables that put the seed and determinism in force for the command."""
    seed = str(int(facts["seed"]))
    environ["PYTHONHASHSEED"] = seed
    environ["IMAGESMITH_SEED"] = seed
    environ["IMAGESMITH_DETERMINISM"] = "on" if facts.get("determinism") else "off"
    environ["IMAGESMITH_ROLE"] = role
    environ["IMAGESMITH_PARITY"] = facts["parity"]


def _call(command, environ):
    """Run ``command`` as a child, forwarding termination signals; its exit code (128+N if killed)."""
    import signal
    import subprocess

    try:
        proc = subprocess.Popen(command, env=dict(environ))
    except OSError as exc:
        _log("cannot start %r: %s" % (command[0], exc))
        return 127

    def forward(signum, frame):
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), forward)
    rc = proc.wait()
    return 128 - rc if rc < 0 else rc


def _shown(path, facts, environ):
    """``path`` as the user sees it: in the host folder ``imagesmith run`` mounted (``stamp.host_path``)."""
    return stamp.host_path(path, facts["artifacts"], environ.get(stamp.HOST_ENV))


def train(command, facts, environ):
    folder = facts["artifacts"]
    old = os.path.join(folder, stamp.STAMP_FILE)
    try:  # a failed run must not leave a stamp that vouches for half-written files
        if os.path.exists(old):
            os.unlink(old)
    except OSError as exc:
        _log("cannot remove the old stamp %s: %s" % (_shown(old, facts, environ), exc))
        return 2
    rc = _call(command, environ)
    if rc != 0:
        _log("train exited %d: no stamp written" % rc)
        return rc
    files, odd = stamp.scan_model(folder)  # one walk: what the stamp lists is what a check finds
    for line in odd:
        _log("%s; not stamped (serve and verify --model will refuse it)" % line)
    if not files:
        _log("train wrote nothing to %s: no stamp written" % _shown(folder, facts, environ))
        return 0
    record = stamp.make_stamp(
        facts,
        folder,
        image_digest=environ.get(stamp.DIGEST_ENV),
        image_ref=environ.get(stamp.REF_ENV),
        command=command,
        files=files,
    )
    try:
        path = stamp.write_stamp(folder, record)
    except OSError as exc:
        _log("training succeeded but the stamp cannot be written to %s: %s" % (_shown(folder, facts, environ), exc))
        return 2
    _log(
        "stamped %d model file(s): %s (parity %s%s)"
        % (
            len(record["artifacts"]),
            _shown(path, facts, environ),
            facts["parity"],
            "" if record["image"]["digest"] else "; image digest unknown: not started by `imagesmith run`",
        )
    )
    return 0


def serve_check(facts, environ):
    """True when the server may start (the model matches, or the override is set)."""
    # files the stamp does not list are logged, not refused, here; the deploy gate (verify --model) refuses them
    check = stamp.check_model(
        facts["artifacts"],
        facts["parity"],
        facts["manifest"],
        siblings=facts.get("platforms"),
        shown=_shown(facts["artifacts"], facts, environ),
        allow_extra=True,
    )
    if check.ok:
        for line in check.checks:
            _log(line)
        return True
    if environ.get(stamp.ALLOW_ENV) == "1":
        sys.stderr.write(stamp.override_banner(check))
        sys.stderr.flush()
        return True
    sys.stderr.write(stamp.refusal(check))
    sys.stderr.flush()
    return False


def main(argv=None, facts_path=None, environ=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if not argv or argv[0] not in ROLES:
        return _usage("the first argument must be train or serve")
    role, command = argv[0], argv[1:]
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        return _usage("no command to run")
    try:
        facts = stamp.read_facts(facts_path or os.path.join(VENV, stamp.FACTS_FILE))
    except stamp.StampError as exc:
        return _usage(str(exc))
    seed_environment(facts, environ, role)
    if role == "train":
        return train(command, facts, environ)
    if not serve_check(facts, environ):
        return REFUSED
    try:
        os.execvpe(command[0], command, environ)
    except OSError as exc:
        _log("cannot start %r: %s" % (command[0], exc))
        return 127


if __name__ == "__main__":
    sys.exit(main())
