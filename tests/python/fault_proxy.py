"""A fault-injecting HTTP proxy for end-to-end tests: sits between refopt and an S3-compatible
server (moto) and fails chosen requests before passing them on.

Each distinct request (method, path with query, Range header) whose method and path match is
failed `faults_per_request` times, then forwarded normally: "up to N faults per request". The
kinds rotate per request through the configured list:

  reset          close the connection with a TCP RST before any response byte
  stall          send nothing for `stall_seconds`, then reset (the client must time out)
  503            answer 503 SlowDown with an S3 error body
  lost_response  forward the request (the server acts on it), then reset instead of answering

Usage: fault_proxy.py UPSTREAM_URL CONFIG_JSON PORT_FILE LOG_FILE
CONFIG_JSON: {"faults_per_request": 2, "kinds": ["reset", "503", "stall"],
              "methods": ["GET"], "path_regex": "\\.parquet", "stall_seconds": 3}
The chosen port is written to PORT_FILE; every injected fault is appended to LOG_FILE as one
JSON line {"method", "path", "kind"}.
"""

import http.client
import json
import os
import re
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


class Faults:
    def __init__(self, config, log_path):
        self.per_request = int(config.get("faults_per_request", 0))
        self.kinds = config.get("kinds", ["reset"])
        self.methods = set(m.upper() for m in config.get("methods", []))
        self.path_regex = re.compile(config.get("path_regex", ""))
        self.stall_seconds = float(config.get("stall_seconds", 3))
        self.log_path = log_path
        self.seen = {}
        self.rotation = 0
        self.lock = threading.Lock()

    def next_fault(self, method, path, range_header):
        """The fault to inject for this attempt, or None to forward it."""
        if self.methods and method not in self.methods:
            return None
        if not self.path_regex.search(path):
            return None
        key = (method, path, range_header)
        with self.lock:
            done = self.seen.get(key, 0)
            if done >= self.per_request:
                return None
            self.seen[key] = done + 1
            kind = self.kinds[self.rotation % len(self.kinds)]
            self.rotation += 1
            with open(self.log_path, "a") as log:
                log.write(json.dumps({"method": method, "path": path, "kind": kind}) + "\n")
            return kind


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    faults = None
    upstream = None

    def log_message(self, *args):
        pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = self.faults.next_fault(self.command, self.path, self.headers.get("Range", ""))
        if fault == "reset":
            return self.reset()
        if fault == "stall":
            time.sleep(self.faults.stall_seconds)
            return self.reset()
        if fault == "503":
            payload = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                b"<Message>Please reduce your request rate.</Message></Error>"
            )
            self.send_response_only(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        status, headers, data = self.forward(body)
        if fault == "lost_response":
            return self.reset()
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() in HOP_BY_HOP or name.lower() == "content-length":
                continue
            self.send_header(name, value)
        if self.command == "HEAD":
            upstream_length = dict((k.lower(), v) for k, v in headers).get("content-length")
            if upstream_length is not None:
                self.send_header("Content-Length", upstream_length)
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def forward(self, body):
        connection = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        result = (response.status, response.getheaders(), data)
        connection.close()
        return result

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_any


def main():
    upstream, config_json, port_file, log_file = sys.argv[1:5]
    Handler.upstream = urlsplit(upstream)
    Handler.faults = Faults(json.loads(config_json), log_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
