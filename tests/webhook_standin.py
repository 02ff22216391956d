"""A local stand-in for webhook receivers (a WeCom group robot, or any JSON endpoint).

It serves on 127.0.0.1 (a free port), records every POST's path, query and JSON body in
``received``, and answers as ``mode`` says:

* ``"ok"``       — HTTP 200 ``{"errcode": 0, "errmsg": "ok"}`` (what a WeCom robot says);
* ``"error500"`` — HTTP 500;
* ``"errcode"``  — HTTP 200 with WeCom's ``{"errcode": 93000, ...}`` (invalid webhook URL);
* ``"redirect"`` — HTTP 302 to another path;
* ``"hang"``     — takes the request and never answers (until stopped).

``down()`` closes the port (connections are refused), ``up()`` serves again on the same port,
so a URL made before ``down()`` works again after ``up()``.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

MODES = ("ok", "error500", "errcode", "redirect", "hang")
WECOM_INVALID_URL = {"errcode": 93000, "errmsg": "invalid webhook url, hint: [stand-in]"}


@dataclass(frozen=True)
class Received:
    path: str
    query: dict
    content_type: str
    body: object  # the parsed JSON, or the raw bytes if they were not JSON


class WebhookStandIn:
    def __init__(self):
        self.received: list[Received] = []
        self._mode = "ok"
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # lets hanging requests end when the stand-in stops
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------
    def up(self) -> "WebhookStandIn":
        """Serve (again): on a free port the first time, on the same port after ``down()``."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        """Close the port: connections are refused until ``up()``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        self._stopped.set()
        self.down()

    def url(self, path: str = "/cgi-bin/webhook/send", **query) -> str:
        return f"http://127.0.0.1:{self.port}{path}" + (f"?{urlencode(query)}" if query else "")

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:  # a typo must not quietly mean "ok"
            raise ValueError(f"unknown stand-in mode {mode!r}; one of {MODES}")
        self._mode = mode

    @property
    def bodies(self) -> list:
        with self._lock:
            return [r.body for r in self.received]

    # -- the server -----------------------------------------------------------
    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw.decode("utf-8"))
                except ValueError:
                    body = raw
                url = urlsplit(self.path)
                standin._record(Received(url.path, {k: v[0] for k, v in parse_qs(url.query).items()},
                                         self.headers.get("Content-Type", ""), body))
                mode = standin.mode
                if mode == "hang":
                    standin._stopped.wait(30)
                    return  # the client has given up: nothing to answer
                if mode == "error500":
                    self._answer(500, {"error": "stand-in failure"})
                elif mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif mode == "errcode":
                    self._answer(200, WECOM_INVALID_URL)
                else:
                    self._answer(200, {"errcode": 0, "errmsg": "ok"})

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def webhook_standin():
    """A webhook stand-in serving in "ok" mode with nothing received; stopped after the test."""
    standin = WebhookStandIn().up()
    try:
        yield standin
    finally:
        standin.stop()
