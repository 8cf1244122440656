"""A second Docker engine on this machine, as a stand-in for a remote one (a CI runner's
docker:dind, a build host): its own data root, exec root, socket, bridge and containerd, so its
image store and build cache start empty. Used by the engine tests and by `make bench`.

Facts behind it (../shared/ENVIRONMENT.md): the engine needs its own bridge made first (never
``--bridge none``, which deletes the first engine's docker0); it reaches the loopback registry;
it is stopped by the PID in its pidfile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SecondEngine:
    root: Path  # data root and logs (on disk)
    run: Path  # exec root, socket, pidfile (short paths: unix sockets are limited to 108 bytes)
    bridge: str
    pid: int = 0
    _stopped: bool = field(default=False, repr=False)

    @property
    def host(self) -> str:
        return f"unix://{self.run / 'docker.sock'}"

    @property
    def env(self) -> dict[str, str]:
        """os.environ with DOCKER_HOST pointing at this engine (and no docker context)."""
        env = dict(os.environ, DOCKER_HOST=self.host)
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, check=check, timeout=timeout
        )

    def stop(self) -> None:
        """Stop the engine (by the PID it wrote), wait for it, remove its bridge and folders."""
        if self._stopped:
            return
        self._stopped = True
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            for _ in range(200):
                if _ended(self.pid):
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)
                _ended(self.pid)
        subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        subprocess.run(["umount", "-R", str(self.root / "data")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.run, ignore_errors=True)


def _ended(pid: int) -> bool:
    """Whether process ``pid`` has ended, reaping it when it is this process's child: dockerd is
    started here, and a child that exited stays a zombie (``kill(pid, 0)`` still finds it) until
    it is waited for."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:  # not our child (or reaped already): ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def _remove_stale_bridges(index: int) -> None:
    """Bridges this helper made for ``index`` in a test process that is gone (killed before its
    teardown): the same subnet on two bridges sends the traffic for the new engine's containers
    to the dead one. Only bridges named as this helper names them (``isb<PID>x<INDEX>``) whose
    process no longer runs are removed."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for name in sorted(set(re.findall(r"\b(isb(\d+)x(\d+))\b", links))):
        bridge, pid, idx = name
        if int(idx) != index or int(pid) == os.getpid() % 100000:
            continue
        if any(int(p) % 100000 == int(pid) for p in os.listdir("/proc") if p.isdigit()):
            continue  # its process (or one with the same short PID) still runs: leave it
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def start_second_engine(index: int = 1, *, timeout: float = 60.0, containerd_store: bool = True) -> SecondEngine:
    """Start an empty engine; ``index`` (1-200) picks its bridge subnet 172.30.INDEX.0/24;
    ``containerd_store=False``: the classic image store (overlay2), not containerd's."""
    _remove_stale_bridges(index)
    root = Path(tempfile.mkdtemp(prefix="imagesmith-engine-", dir="/var/tmp"))
    run = Path(tempfile.mkdtemp(prefix="ise-", dir="/run"))
    bridge = f"isb{os.getpid() % 100000}x{index}"[:15]
    engine = SecondEngine(root=root, run=run, bridge=bridge)
    try:
        subprocess.run(["ip", "link", "add", "name", bridge, "type", "bridge"], check=True, capture_output=True)
        subprocess.run(["ip", "addr", "add", f"172.30.{index}.1/24", "dev", bridge], check=True, capture_output=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True, capture_output=True)
        config = root / "daemon.json"
        config.write_text(json.dumps({"features": {"containerd-snapshotter": containerd_store}}))
        pidfile = run / "docker.pid"
        argv = [
            shutil.which("dockerd") or "/usr/sbin/dockerd",  # root's PATH may lack /usr/sbin
            "--config-file",
            str(config),
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(run / "exec"),
            "--pidfile",
            str(pidfile),
            "-H",
            engine.host,
            "-b",
            bridge,
            "--iptables=false",
            "--ip6tables=false",
        ]
        with open(root / "dockerd.log", "wb") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"),
            )
        engine.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the second dockerd exited ({proc.returncode}):\n"
                    + (root / "dockerd.log").read_text(errors="replace")[-2000:]
                )
            if engine.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30).returncode == 0:
                return engine
            time.sleep(0.3)
        raise RuntimeError(
            "the second dockerd did not answer within "
            f"{timeout:.0f} s:\n" + (root / "dockerd.log").read_text(errors="replace")[-2000:]
        )
    except BaseException:
        engine.stop()
        raise
