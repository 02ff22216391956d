"""WeChat JS-SDK signing and the token/ticket flow, against a local stand-in for WeChat's API."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from app.wechat import JsSdk, TicketCache, WeChatConfig, WeChatError, sign


def test_signature_matches_the_official_documented_example():
    # WeChat JS-SDK documentation, appendix 1 (signature algorithm), worked example.
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    assert sign(ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value") == (
        "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    )


class StandIn(BaseHTTPRequestHandler):
    """Answers like WeChat's /cgi-bin/token and /cgi-bin/ticket/getticket, and counts calls."""

    calls: list = []
    fail_token = False

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        type(self).calls.append((url.path, q))
        if url.path == "/cgi-bin/token":
            if type(self).fail_token or q.get("secret") != "s3cret":
                body = {"errcode": 40001, "errmsg": "invalid credential"}
            else:
                body = {"access_token": "TOKEN-1", "expires_in": 7200}
        elif url.path == "/cgi-bin/ticket/getticket" and q.get("access_token") == "TOKEN-1":
            body = {"errcode": 0, "errmsg": "ok", "ticket": "TICKET-1", "expires_in": 7200}
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


@pytest.fixture
def wechat_api():
    StandIn.calls = []
    StandIn.fail_token = False
    server = HTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_token_and_ticket_are_fetched_once_and_cached(wechat_api):
    sdk = JsSdk(WeChatConfig("wx123", "s3cret", wechat_api), TicketCache(None))
    first = sdk.page_config("https://example.cn/s/1?from=qr", now=1700000000, nonce="abc")
    assert first == {
        "appId": "wx123", "timestamp": 1700000000, "nonceStr": "abc",
        "signature": sign("TICKET-1", "abc", 1700000000, "https://example.cn/s/1?from=qr"),
    }
    for _ in range(5):
        sdk.page_config("https://example.cn/")
    assert [path for path, _ in StandIn.calls] == ["/cgi-bin/token", "/cgi-bin/ticket/getticket"]
    assert StandIn.calls[0][1]["grant_type"] == "client_credential"
    assert StandIn.calls[1][1] == {"access_token": "TOKEN-1", "type": "jsapi"}


def test_cache_is_shared_through_redis_across_workers(wechat_api):
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    client.delete("yizhan:wechat:wxshared:access_token", "yizhan:wechat:wxshared:jsapi_ticket")
    worker_a = JsSdk(WeChatConfig("wxshared", "s3cret", wechat_api), TicketCache("redis://127.0.0.1:6379/15"))
    worker_b = JsSdk(WeChatConfig("wxshared", "s3cret", wechat_api), TicketCache("redis://127.0.0.1:6379/15"))
    assert worker_a.cache.shared and worker_b.cache.shared
    worker_a.page_config("https://example.cn/")
    worker_b.page_config("https://example.cn/")
    assert len(StandIn.calls) == 2  # worker B used A's token and ticket
    ttl = client.ttl("yizhan:wechat:wxshared:jsapi_ticket")
    assert 7200 - 300 - 5 <= ttl <= 7200 - 300  # expires before WeChat's own expiry
    client.delete("yizhan:wechat:wxshared:access_token", "yizhan:wechat:wxshared:jsapi_ticket")


def test_without_redis_the_cache_falls_back_to_the_process(wechat_api):
    cache = TicketCache("redis://127.0.0.1:1/0")  # nothing listens there
    assert not cache.shared
    sdk = JsSdk(WeChatConfig("wx123", "s3cret", wechat_api), cache)
    sdk.page_config("https://example.cn/")
    sdk.page_config("https://example.cn/")
    assert len(StandIn.calls) == 2


def test_wechat_errors_are_reported(wechat_api):
    sdk = JsSdk(WeChatConfig("wx123", "wrong", wechat_api), TicketCache(None))
    with pytest.raises(WeChatError, match="40001"):
        sdk.page_config("https://example.cn/")
    sdk = JsSdk(WeChatConfig("wx123", "s3cret", "http://127.0.0.1:1"), TicketCache(None))
    with pytest.raises(WeChatError, match="unreachable"):
        sdk.page_config("https://example.cn/")


def test_jssdk_config_endpoint(wechat_api):
    from app import create_app

    app = create_app({"TESTING": True, "WECHAT_APP_ID": "wx123", "WECHAT_APP_SECRET": "s3cret",
                      "WECHAT_API_BASE": wechat_api, "REDIS_URL": "",
                      "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    client = app.test_client()
    r = client.get("/api/v1/wechat/jssdk-config", query_string={"url": "https://yizhan.example/s/5?from=qr#map"})
    body = r.get_json()
    assert r.status_code == 200 and body["appId"] == "wx123"
    assert body["signature"] == sign("TICKET-1", body["nonceStr"], body["timestamp"], "https://yizhan.example/s/5?from=qr")
    assert client.get("/api/v1/wechat/jssdk-config").status_code == 400
    assert client.get("/api/v1/wechat/jssdk-config?url=javascript:alert(1)").status_code == 400


def test_jssdk_config_when_not_configured_or_wechat_fails(wechat_api):
    from app import create_app

    plain = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "WECHAT_APP_ID": ""})
    r = plain.test_client().get("/api/v1/wechat/jssdk-config?url=https://x.cn/")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_configured"
    broken = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "WECHAT_APP_ID": "wx1",
                         "WECHAT_APP_SECRET": "wrong", "WECHAT_API_BASE": wechat_api, "REDIS_URL": ""})
    r = broken.test_client().get("/api/v1/wechat/jssdk-config?url=https://x.cn/")
    assert r.status_code == 502 and r.get_json()["error"]["code"] == "upstream_error"
