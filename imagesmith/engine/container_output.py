"""A container's output, bounded: its stdout read while it runs, up to a limit past which the
container is killed (``Collector``), and the tail of a log stream (``tail_of``)."""

from __future__ import annotations

from typing import Any


class Collector:
    """A command's stdout, read in a thread while it runs (``logs(follow=True)``), at most
    ``limit`` bytes: past that the container is killed (``over``), so a command that prints
    without end costs neither memory nor the time it would take to finish."""

    def __init__(self, container, limit: int) -> None:
        import threading

        self.container, self.limit = container, limit
        self.over = False
        self._buf = bytearray()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        from docker.errors import DockerException

        try:
            stream = self.container.logs(stdout=True, stderr=False, stream=True, follow=True)
            self._stream = stream
            for chunk in stream:
                if len(self._buf) + len(chunk) > self.limit:
                    self.over = True
                    break
                self._buf += chunk
        except (DockerException, OSError, ValueError):
            pass
        if self.over:
            try:
                self.container.kill()
            except DockerException:
                pass
        self._close()

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a half-read HTTP response
                pass

    def done(self, wait: float = 30.0) -> None:
        """The container has stopped: the rest of its output arrives, then the stream ends
        (``wait`` 0: it has not stopped; stop reading)."""
        if wait > 0:
            self._thread.join(wait)
        if self._thread.is_alive():
            self._close()
            self._thread.join(5 if wait > 0 else 0.1)

    def text(self) -> str:
        """What was read, decoded (nothing when it was cut off: ``over``); the buffer is freed."""
        buf, self._buf = self._buf, bytearray()
        return "" if self.over else buf.decode("utf-8", "replace")


def tail_of(stream, keep: int, most: int = 16 << 20) -> bytes:
    """The last ``keep`` bytes of a log stream, read to its end (or its first ``most`` bytes) in
    bounded memory."""
    buf = bytearray()
    seen = 0
    try:
        for chunk in stream:
            buf += chunk
            seen += len(chunk)
            if len(buf) > 2 * keep:
                del buf[:-keep]
            if seen > most:
                break
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass
    return bytes(buf[-keep:])
