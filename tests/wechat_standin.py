"""A local stand-in for WeChat's token and ticket API (WeChat's servers are a third party).

``StandIn.mode`` picks how it behaves: "normal" answers like WeChat; "silent" takes the
request and never answers (until the server is stopped); "error" answers every call with
errcode 40125, as WeChat does for a wrong app secret. Every call is recorded in ``StandIn.calls``.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SECRET = "s3cret"
TOKEN = "TOKEN-1"
TICKET = "TICKET-1"
INVALID_APPSECRET = {"errcode": 40125, "errmsg": "invalid appsecret"}


class StandIn(BaseHTTPRequestHandler):
    """Answers like /cgi-bin/token and /cgi-bin/ticket/getticket, and records every call."""

    calls: list = []
    mode = "normal"
    stopped = threading.Event()  # lets silent calls end when the server stops

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).calls.append((url.path, q))
        if self.mode == "silent":
            type(self).stopped.wait(60)
            return
        if self.mode == "error":
            body = INVALID_APPSECRET
        elif url.path == "/cgi-bin/token":
            body = ({"access_token": TOKEN, "expires_in": 7200} if q.get("secret") == SECRET
                    else {"errcode": 40001, "errmsg": "invalid credential"})
        elif url.path == "/cgi-bin/ticket/getticket" and q.get("access_token") == TOKEN:
            body = {"errcode": 0, "errmsg": "ok", "ticket": TICKET, "expires_in": 7200}
        else:
            body = {"errcode": 40014, "errmsg": "invalid access_token"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def start() -> tuple[str, ThreadingHTTPServer]:
    """Serve on a free local port, in normal mode with no calls recorded; returns (base URL, server)."""
    StandIn.calls = []
    StandIn.mode = "normal"
    StandIn.stopped = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def stop(server: ThreadingHTTPServer) -> None:
    StandIn.stopped.set()
    server.shutdown()
    server.server_close()
