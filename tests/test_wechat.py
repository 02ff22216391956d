"""WeChat JS-SDK signing and the token/ticket flow, against a local stand-in for WeChat's API."""
import pytest

from tests import wechat_standin

from app.wechat import JsSdk, TicketCache, WeChatConfig, WeChatError, sign


def test_signature_matches_the_official_documented_example():
    # WeChat JS-SDK documentation, appendix 1 (signature algorithm), worked example.
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    assert sign(ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value") == (
        "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    )


@pytest.fixture
def wechat_api():
    url, server = wechat_standin.start()
    yield url
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
    assert [path for path, _ in wechat_standin.StandIn.calls] == ["/cgi-bin/token", "/cgi-bin/ticket/getticket"]
    assert wechat_standin.StandIn.calls[0][1]["grant_type"] == "client_credential"
    assert wechat_standin.StandIn.calls[1][1] == {"access_token": "TOKEN-1", "type": "jsapi"}


def test_cache_is_shared_through_redis_across_workers(wechat_api):
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    client.delete("yizhan:wechat:wxshared:access_token", "yizhan:wechat:wxshared:jsapi_ticket")
    worker_a = JsSdk(WeChatConfig("wxshared", "s3cret", wechat_api), TicketCache("redis://127.0.0.1:6379/15"))
    worker_b = JsSdk(WeChatConfig("wxshared", "s3cret", wechat_api), TicketCache("redis://127.0.0.1:6379/15"))
    assert worker_a.cache.shared and worker_b.cache.shared
    worker_a.page_config("https://example.cn/")
    worker_b.page_config("https://example.cn/")
    assert len(wechat_standin.StandIn.calls) == 2  # worker B used A's token and ticket
    ttl = client.ttl("yizhan:wechat:wxshared:jsapi_ticket")
    assert 7200 - 300 - 5 <= ttl <= 7200 - 300  # expires before WeChat's own expiry
    client.delete("yizhan:wechat:wxshared:access_token", "yizhan:wechat:wxshared:jsapi_ticket")


def test_without_redis_the_cache_falls_back_to_the_process(wechat_api):
    cache = TicketCache("redis://127.0.0.1:1/0")  # nothing listens there
    assert not cache.shared
    sdk = JsSdk(WeChatConfig("wx123", "s3cret", wechat_api), cache)
    sdk.page_config("https://example.cn/")
    sdk.page_config("https://example.cn/")
    assert len(wechat_standin.StandIn.calls) == 2


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


def test_a_revoked_token_is_replaced_once(wechat_api):
    cache = TicketCache(None)
    cache.set("yizhan:wechat:wx123:access_token", "REVOKED", 7000)  # e.g. another system refreshed it
    sdk = JsSdk(WeChatConfig("wx123", "s3cret", wechat_api), cache)
    sdk.page_config("https://example.cn/")
    paths = [p for p, _ in wechat_standin.StandIn.calls]
    assert paths == ["/cgi-bin/ticket/getticket", "/cgi-bin/token", "/cgi-bin/ticket/getticket"]
