"""`srcproj-serve`: POST /predict with a JSON list of features, answers {"prediction": x}."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def load() -> dict:
    with open(os.path.join(os.environ.get("ARTIFACTS", "/artifacts"), "model.json")) as fh:
        return json.load(fh)


class Handler(BaseHTTPRequestHandler):
    model: dict = {}

    def do_GET(self) -> None:  # health
        self._send(200, {"ok": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        features = json.loads(self.rfile.read(length) or b"[]")
        value = sum(w * x for w, x in zip(self.model["weights"], features)) + self.model["offset"]
        self._send(200, {"prediction": value})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> int:
    Handler.model = load()
    port = int(os.environ.get("PORT", "8000"))
    print(f"serving on {port}", flush=True)
    HTTPServer(("0.0.0.0", port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
