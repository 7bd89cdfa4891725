#!/usr/bin/env python3
"""Callback receiver for the tests: logs every POST as one JSON line (its
body parsed, and as sent, in base64: "raw").

receiver.py PORTFILE LOGFILE [PORT [ADDRESS]]: listens on ADDRESS:PORT
(default 127.0.0.1 and a free port), and writes the port to PORTFILE. The path chooses the answer: /ok/... 200, /notfound/... 404,
/flaky/... 503 for the first two POSTs to that path, then 200;
/redirect/... 307 to /ok/redirected; /slow/... waits 3 s before its first
answer, then 200.
"""
import base64
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port_file, log_file = sys.argv[1], sys.argv[2]
seen = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        seen[self.path] = seen.get(self.path, 0) + 1
        location = None
        if self.path.startswith("/notfound/"):
            status = 404
        elif self.path.startswith("/redirect/"):
            status, location = 307, "/ok/redirected"
        elif self.path.startswith("/slow/"):
            if seen[self.path] == 1:
                time.sleep(3)
            status = 200
        elif self.path.startswith("/flaky/") and seen[self.path] <= 2:
            status = 503
        else:
            status = 200
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with open(log_file, "a") as log:
            log.write(json.dumps({"path": self.path, "status": status,
                                  "content_type": self.headers.get("Content-Type"),
                                  "body": parsed,
                                  "raw": base64.b64encode(body).decode()}) + "\n")
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
address = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
server = ThreadingHTTPServer((address, port), Handler)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
