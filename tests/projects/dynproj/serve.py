"""POST /predict answers with the model's six version and the image's."""

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import six

MODEL = json.load(open(os.path.join(os.environ.get("IMAGESMITH_ARTIFACTS", "/artifacts"), "model.json")))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"model": MODEL, "serving": six.__version__}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
