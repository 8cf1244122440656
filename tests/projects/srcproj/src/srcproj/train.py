"""`srcproj-train` (or `python -m srcproj.train`): writes model.json into the artifacts folder."""

import json
import os
import sys

import six

from . import OFFSET, weights


def main() -> int:
    folder = os.environ.get("ARTIFACTS", "/artifacts")
    model = {"weights": [w * 2 for w in weights()], "offset": OFFSET, "six": six.__version__}
    with open(os.path.join(folder, "model.json"), "w") as fh:
        json.dump(model, fh)
    print(f"trained: {model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
