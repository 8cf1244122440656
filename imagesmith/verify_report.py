"""What ``imagesmith verify`` reports (``Report``: checks, problems, notes) and how it reads a
JSON label (bounded: ``runtime/untrusted.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from .engine import ImageInfo
from .findings import Findings
from .runtime.untrusted import loads

# What is read from an image is untrusted input (runtime/untrusted.py): bounded, then shape-checked
MAX_LABEL = 4 << 20  # bytes of a JSON label imagesmith reads (the platforms', the user's labels)


def label_json(info: ImageInfo, label: str) -> object:
    """The JSON value of ``label`` (None when it is not set); UntrustedInput when it is not
    bounded JSON (``untrusted.loads``)."""
    text = info.labels.get(label)
    if not text:
        return None
    return loads(text, what=f"label {label}", max_bytes=MAX_LABEL)


@dataclass
class Report(Findings):
    image: str
    image_id: str = ""
    parity: str | None = None
    role: str | None = None
    mode: str = "content"  # "content" or "labels" (--labels-only)

    def as_json(self) -> dict:
        return {
            "image": self.image,
            "id": self.image_id,
            "ok": self.ok,
            "parity": self.parity,
            "role": self.role,
            "mode": self.mode,
            **self.findings_json(),
        }
