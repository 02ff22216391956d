"""WeChat JS-SDK signing and the token/ticket flow, against a local stand-in for WeChat's API."""
import uuid

import pytest

from tests import wechat_standin

from app import create_app
from app.wechat import JsSdk, TicketCache, WeChatBackoff, WeChatConfig, WeChatError, sign

JSSDK = "/api/v1/wechat/jssdk-config"
PUBLIC_URL = "https://yizhan.example.cn"
REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


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
    wechat_standin.stop(server)


@pytest.fixture
def redis_prefix():
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    prefix = f"yizhan-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


def wechat_app(api_base: str, **config):
    """An app signing for PUBLIC_URL against the stand-in, each worker caching for itself."""
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "WECHAT_APP_ID": "wx123",
                       "WECHAT_APP_SECRET": wechat_standin.SECRET, "WECHAT_API_BASE": api_base,
                       "REDIS_URL": "", "YIZHAN_PUBLIC_URL": PUBLIC_URL, **config})


def called_paths() -> list[str]:
    return [path for path, _ in wechat_standin.StandIn.calls]


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
    app = create_app({"TESTING": True, "WECHAT_APP_ID": "wx123", "WECHAT_APP_SECRET": "s3cret",
                      "WECHAT_API_BASE": wechat_api, "REDIS_URL": "", "YIZHAN_PUBLIC_URL": "https://yizhan.example",
                      "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    client = app.test_client()
    r = client.get("/api/v1/wechat/jssdk-config", query_string={"url": "https://yizhan.example/s/5?from=qr#map"})
    body = r.get_json()
    assert r.status_code == 200 and body["appId"] == "wx123"
    assert body["signature"] == sign("TICKET-1", body["nonceStr"], body["timestamp"], "https://yizhan.example/s/5?from=qr")
    assert client.get("/api/v1/wechat/jssdk-config").status_code == 400
    assert client.get("/api/v1/wechat/jssdk-config?url=javascript:alert(1)").status_code == 400


def test_jssdk_config_when_not_configured_or_wechat_fails(wechat_api):
    plain = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "WECHAT_APP_ID": ""})
    r = plain.test_client().get("/api/v1/wechat/jssdk-config?url=https://x.cn/")
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_configured"
    broken = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "WECHAT_APP_ID": "wx1",
                         "WECHAT_APP_SECRET": "wrong", "WECHAT_API_BASE": wechat_api, "REDIS_URL": "",
                         "YIZHAN_PUBLIC_URL": "https://x.cn"})
    r = broken.test_client().get("/api/v1/wechat/jssdk-config?url=https://x.cn/")
    assert r.status_code == 502 and r.get_json()["error"]["code"] == "upstream_error"


def test_a_revoked_token_is_replaced_once(wechat_api):
    cache = TicketCache(None)
    cache.set("yizhan:wechat:wx123:access_token", "REVOKED", 7000)  # e.g. another system refreshed it
    sdk = JsSdk(WeChatConfig("wx123", "s3cret", wechat_api), cache)
    sdk.page_config("https://example.cn/")
    paths = [p for p, _ in wechat_standin.StandIn.calls]
    assert paths == ["/cgi-bin/ticket/getticket", "/cgi-bin/token", "/cgi-bin/ticket/getticket"]


@pytest.mark.parametrize("mode", ["silent", "error"])
def test_a_failing_wechat_is_not_asked_again_while_backing_off(wechat_api, mode):
    """WeChat silent (the call gives up after the 2 s budget) or answering 40125 (wrong secret):
    the first page load asks WeChat once and gets 502, and WeChat is left alone for 5 s; the
    second, within those 5 s, gets 503 straight away without asking WeChat."""
    wechat_standin.StandIn.mode = mode
    client = wechat_app(wechat_api).test_client()
    first = client.get(JSSDK, query_string={"url": PUBLIC_URL + "/"})
    second = client.get(JSSDK, query_string={"url": PUBLIC_URL + "/s/5"})
    assert called_paths() == ["/cgi-bin/token"]
    assert first.status_code == 502 and first.get_json()["error"]["code"] == "upstream_error"
    assert first.headers["Retry-After"] == "5"
    assert second.status_code == 503 and second.get_json()["error"]["code"] == "upstream_backoff"
    assert 1 <= int(second.headers["Retry-After"]) <= 5


def test_backoff_doubles_with_each_failure_in_a_row_and_a_success_resets_it(wechat_api):
    """Clock in seconds. 1000: 40125, left alone until 1005. 1004.5: refused, 0.5 s → Retry-After 1.
    1005: 40125 again, left alone 10 s, until 1015. 1014: refused. 1015: WeChat answers (token,
    ticket). A later failure is the first in a row again: 5 s."""
    now = [1000.0]
    config = WeChatConfig("wx123", wechat_standin.SECRET, wechat_api)
    sdk = JsSdk(config, TicketCache(None), clock=lambda: now[0])
    wechat_standin.StandIn.mode = "error"

    def attempt(at: float) -> WeChatError | None:
        now[0] = at
        try:
            sdk.page_config("https://example.cn/")
        except WeChatError as exc:
            return exc
        return None

    failed = attempt(1000)
    assert type(failed) is WeChatError and failed.errcode == 40125 and failed.retry_after_s == 5
    waiting = attempt(1004.5)
    assert type(waiting) is WeChatBackoff and waiting.retry_after_s == 1
    failed = attempt(1005)
    assert type(failed) is WeChatError and failed.retry_after_s == 10
    assert type(attempt(1014)) is WeChatBackoff
    assert called_paths() == ["/cgi-bin/token", "/cgi-bin/token"]

    wechat_standin.StandIn.mode = "normal"
    assert attempt(1015) is None
    assert called_paths()[2:] == ["/cgi-bin/token", "/cgi-bin/ticket/getticket"]

    sdk.cache.delete("yizhan:wechat:wx123:jsapi_ticket")
    sdk.cache.delete("yizhan:wechat:wx123:access_token")
    wechat_standin.StandIn.mode = "error"
    failed = attempt(2000)
    assert type(failed) is WeChatError and failed.retry_after_s == 5


def test_backoff_is_shared_through_redis_across_workers(wechat_api, redis_prefix):
    """Worker A's failure keeps worker B from asking WeChat too."""
    wechat_standin.StandIn.mode = "error"
    config = WeChatConfig("wx123", wechat_standin.SECRET, wechat_api)
    worker_a = JsSdk(config, TicketCache(REDIS_TEST_URL), key_prefix=redis_prefix)
    worker_b = JsSdk(config, TicketCache(REDIS_TEST_URL), key_prefix=redis_prefix)
    assert worker_a.cache.shared and worker_b.cache.shared
    with pytest.raises(WeChatError, match="40125") as failed:
        worker_a.page_config("https://example.cn/")
    assert failed.value.retry_after_s == 5
    with pytest.raises(WeChatBackoff) as waiting:
        worker_b.page_config("https://example.cn/")
    assert 1 <= waiting.value.retry_after_s <= 5
    assert called_paths() == ["/cgi-bin/token"]


def test_a_corrected_secret_is_tried_at_once(wechat_api):
    """A wrong secret costs one token call, then backs off; the corrected secret is not held back."""
    cache = TicketCache(None)
    wrong = JsSdk(WeChatConfig("wx123", "wrong", wechat_api), cache)
    with pytest.raises(WeChatError, match="40001"):
        wrong.page_config("https://example.cn/")
    with pytest.raises(WeChatBackoff):
        wrong.page_config("https://example.cn/")
    assert called_paths() == ["/cgi-bin/token"]
    corrected = JsSdk(WeChatConfig("wx123", wechat_standin.SECRET, wechat_api), cache)
    corrected.page_config("https://example.cn/")
    assert called_paths() == ["/cgi-bin/token", "/cgi-bin/token", "/cgi-bin/ticket/getticket"]


@pytest.mark.parametrize("url", [
    "https://evil.example/",
    "https://yizhan.example.cn.evil.example/",
    "http://yizhan.example.cn/",  # another scheme
    "https://yizhan.example.cn:8443/",  # another port
    "https://evil.example@yizhan.example.cn/",  # user info: hosts are read differently around an @
    "https://yizhan.example.cn:port/",
])
def test_only_the_sites_own_pages_are_signed(wechat_api, url):
    """With YIZHAN_PUBLIC_URL set, the Host header (here evil.example, matching the URL) counts for nothing."""
    client = wechat_app(wechat_api).test_client()
    r = client.get(JSSDK, query_string={"url": url}, headers={"Host": "evil.example"})
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_parameter" and r.get_json()["error"]["field"] == "url"
    assert called_paths() == []


@pytest.mark.parametrize("url", ["https://yizhan.example.cn/s/5?from=qr", "https://YIZHAN.example.cn:443/"])
def test_the_sites_own_pages_are_signed_as_the_page_gives_them(wechat_api, url):
    r = wechat_app(wechat_api).test_client().get(JSSDK, query_string={"url": url})
    body = r.get_json()
    assert r.status_code == 200
    assert body["signature"] == sign(wechat_standin.TICKET, body["nonceStr"], body["timestamp"], url)


def test_without_a_public_url_the_requests_own_host_is_signed(wechat_api):
    """Development fallback: the Host header decides (any client can forge it, so production sets
    YIZHAN_PUBLIC_URL). The scheme is not compared: behind an HTTPS proxy the app is spoken to in http."""
    client = wechat_app(wechat_api, YIZHAN_PUBLIC_URL="").test_client()

    def status(url: str, host: str) -> int:
        return client.get(JSSDK, query_string={"url": url}, headers={"Host": host}).status_code

    assert status("https://yizhan.test/s/1", "yizhan.test") == 200
    assert status("http://yizhan.test/", "yizhan.test") == 200
    assert status("http://localhost:8000/", "localhost:8000") == 200
    assert status("https://evil.example/", "yizhan.test") == 400
    assert status("http://localhost/", "localhost:8000") == 400
