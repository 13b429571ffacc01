"""Real notification receivers for end-to-end tests: an HTTP server and an SMTP server on
127.0.0.1, each appending what it receives to a JSONL file.

HTTP paths decide the behaviour:
  /ok/...          answers 200
  /flaky/...       answers 503 to the first two requests with a given Idempotency-Key, then 200
  /down/...        always answers 503
SMTP accepts any login (AUTH over plain TCP is allowed here, for the test only).

Usage: notify_sinks.py PORTS_FILE LOG_FILE
Writes {"http": port, "smtp": port} to PORTS_FILE. Log lines: {"sink": "http", "path",
"status", "body"} or {"sink": "smtp", "from", "to", "data", "login"}.
"""

import json
import os
import socket
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

LOCK = threading.Lock()
SEEN = Counter()


def log(path, record):
    with LOCK, open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class Hooks(BaseHTTPRequestHandler):
    log_file = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        key = self.headers.get("Idempotency-Key", "") + self.path
        with LOCK:
            SEEN[key] += 1
            count = SEEN[key]
        if self.path.startswith("/down"):
            status = 503
        elif self.path.startswith("/flaky") and count <= 2:
            status = 503
        else:
            status = 200
        log(self.log_file, {"sink": "http", "path": self.path, "status": status, "body": body})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Mail:
    def __init__(self, log_file):
        self.log_file = log_file

    async def handle_DATA(self, server, session, envelope):
        log(
            self.log_file,
            {
                "sink": "smtp",
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf8", "replace"),
                "login": (session.login_data or b"").decode() if isinstance(session.login_data, bytes) else str(session.login_data),
            },
        )
        return "250 OK"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ports_file, log_file = sys.argv[1:3]
    Hooks.log_file = log_file
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    smtp_port = free_port()
    controller = Controller(
        Mail(log_file),
        hostname="127.0.0.1",
        port=smtp_port,
        auth_require_tls=False,
        authenticator=lambda server, session, envelope, mechanism, auth_data: AuthResult(success=True),
    )
    controller.start()
    with open(ports_file + ".tmp", "w") as f:
        json.dump({"http": http.server_address[1], "smtp": smtp_port}, f)
    os.replace(ports_file + ".tmp", ports_file)
    http.serve_forever()


if __name__ == "__main__":
    main()
