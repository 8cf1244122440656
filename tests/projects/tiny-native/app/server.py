"""Serve the model over HTTP with the standard library: POST /predict with a list of samples.
Class names go out through markupsafe's C extension, so the platform's binary wheel runs."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import markupsafe
from app.predict import load, scores

MODEL = load()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer(200, {"ok": True} if self.path == "/healthz" else {"error": "not found"})

    def do_POST(self):
        if self.path != "/predict":
            return self.answer(404, {"error": "not found"})
        rows = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        probabilities = scores(MODEL, rows)
        best = [MODEL["classes"][p.index(max(p))] for p in probabilities]
        self.answer(200, {"classes": [str(markupsafe.escape(c)) for c in best], "probabilities": probabilities})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
