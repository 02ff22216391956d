"""A local stand-in for an operator's published GBFS feed (a third party's server).

Serves ``/gbfs.json`` (discovery, GBFS 2.3 shape, pointing at ``/station_status.json``) and
``/station_status.json`` (``stations``, ``ttl`` as set) on 127.0.0.1, and counts requests. ``mode``:
``"ok"``; ``"error500"`` (every answer 500); ``"not_json"``; ``"no_status"`` (discovery lists no
station_status feed); and hostile ones: ``"deep"`` (station_status nested 100,000 deep),
``"bad_status_line"`` (not HTTP), ``"file_status"`` (discovery points station_status at a local
file), ``"drip"`` (station_status sent a byte at a time, ``drip_s`` apart). ``down()`` closes the port.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class GbfsStandIn:
    def __init__(self):
        self.stations: list = []
        self.ttl = 30
        self.mode = "ok"
        self.drip_s = 0.2
        self.local_file = "/etc/hostname"
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/gbfs.json"

    def up(self) -> "GbfsStandIn":
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _body(self, path: str):
        if self.mode == "error500":
            return 500, b"{}"
        if self.mode == "not_json":
            return 200, b"<html>maintenance</html>"
        if path == "/gbfs.json":
            feeds = [{"name": "system_information", "url": f"http://127.0.0.1:{self.port}/system_information.json"}]
            if self.mode == "file_status":
                feeds.append({"name": "station_status", "url": f"file://{self.local_file}"})
            elif self.mode != "no_status":
                feeds.append({"name": "station_status", "url": f"http://127.0.0.1:{self.port}/station_status.json"})
            body = {"last_updated": 0, "ttl": self.ttl, "version": "2.3", "data": {"zh": {"feeds": feeds}}}
        elif path == "/station_status.json" and self.mode == "deep":
            return 200, b'{"data": ' + b"[" * 100_000
        elif path == "/station_status.json":
            body = {"last_updated": 0, "ttl": self.ttl, "version": "2.3", "data": {"stations": self.stations}}
        else:
            return 404, b"{}"
        return 200, json.dumps(body).encode()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                standin.requests.append(self.path)
                if self.path == "/station_status.json" and standin.mode == "bad_status_line":
                    self.wfile.write(b"HTTP/1.1 abc\r\n\r\n")
                    return
                status, body = standin._body(self.path)
                if self.path == "/station_status.json" and standin.mode == "drip":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(standin.drip_s)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def gbfs_standin():
    standin = GbfsStandIn().up()
    try:
        yield standin
    finally:
        standin.down()
