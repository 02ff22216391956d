"""Security headers on every response, on both stores: every route of the url_map (GET where it
takes one, else its own method), static files and errors; public pages may be framed (WeChat's
web-view), staff pages may not; HSTS only over HTTPS."""
import itertools
import re

import pytest

from app import create_app
from app.ops.accounts import Accounts
from app.security import FINDER, MEDIA, REPORTING, STAFF, STRICT, policy_for
from tests.helpers import station

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_addresses = itertools.count(1)


def _sample(rule) -> str:
    """A concrete path for a rule: 1 for numbers, a short word for strings, a real file for paths."""
    values = {}
    for name, converter in rule._converters.items():
        kind = type(converter).__name__
        if kind == "AnyConverter":
            values[name] = sorted(converter.items)[0]
        else:
            values[name] = {"IntegerConverter": 1, "FloatConverter": 1.0,
                            "PathConverter": "app/app.js"}.get(kind, "x")
    return rule.build(values, append_unknown=False)[1]


def _routes(app):
    for rule in app.url_map.iter_rules():
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"OPTIONS", "HEAD"})[0]
        yield rule, method, _sample(rule)


def _check(response, path, *, https: bool):
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert csp, path
    assert headers["X-Content-Type-Options"] == "nosniff", path
    assert headers.get("Referrer-Policy"), path
    # No area may run inline script: no 'unsafe-inline' or nonce for scripts anywhere.
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src is None or ("'unsafe-inline'" not in script_src.group(1)
                                  and "nonce-" not in script_src.group(1)), path
    assert ("Strict-Transport-Security" in headers) is https, path


@pytest.fixture
def web(client):
    client.environ_base["REMOTE_ADDR"] = f"10.77.{next(_addresses) % 250}.{next(_addresses) % 250 + 1}"
    return client


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_route_carries_the_security_headers(app, web, store, scheme):
    store.upsert([station("door", 27.83, 113.15, name="河西驿站")])
    seen = 0
    for rule, method, path in _routes(app):
        response = web.open(path, method=method, base_url=f"{scheme}://localhost")
        _check(response, f"{method} {path} -> {response.status_code}", https=scheme == "https")
        seen += 1
    assert seen == len(list(app.url_map.iter_rules())) >= 60


def test_errors_and_static_files_carry_them_too(app, web):
    for path in ("/no/such/page", "/static/robots.txt", "/static/staff/inspect.js", "/api/v1/no-such",
                 "/api/v1/stations/nearest?lat=999&lng=0", "/s/987654321"):
        response = web.get(path)
        _check(response, path, https=False)
    assert web.get("/no/such/page").headers["X-Frame-Options"] == "DENY"
    assert web.delete("/").status_code == 405


def test_an_unhandled_error_carries_them(tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite3", "TESTING": False,
                      "PROPAGATE_EXCEPTIONS": False})

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    _check(response, "/boom", https=False)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def _framable(response) -> bool:
    return ("X-Frame-Options" not in response.headers
            and "frame-ancestors" not in response.headers["Content-Security-Policy"])


def test_the_public_pages_may_be_framed_by_wechat(web, store):
    store.upsert([station("door", 27.83, 113.15, name="河西驿站")])
    sid = web.get("/api/v1/stations/nearest?lat=27.83&lng=113.15").get_json()["results"][0]["id"]
    for path in ("/", f"/s/{sid}", f"/s/{sid}/report", "/r/not-a-token"):
        page = web.get(path)
        assert page.status_code in (200, 404) and _framable(page), path
    shell = web.get("/").headers["Content-Security-Policy"]
    # Scripts from this site only (WeChat is not configured here), tiles from the base-map hosts.
    assert "script-src 'self';" in shell and "https://tile.openstreetmap.org" in shell
    assert "https://*.tianditu.gov.cn" in shell and "https://*.is.autonavi.com" in shell


def test_staff_pages_may_not_be_framed(web, store):
    accounts = Accounts(store)
    accounts.create_organisation("hetang", "荷塘区")
    accounts.create_user("li@example.cn", PASSWORD, "station_manager", org_code="hetang")
    login = web.get("/staff/login")
    assert not _framable(login) and login.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in login.headers["Content-Security-Policy"]
    token = CSRF.search(login.get_data(as_text=True)).group(1)
    web.post("/staff/login", data={"csrf_token": token, "email": "li@example.cn", "password": PASSWORD})
    queue = web.get("/staff/")
    assert queue.status_code == 200
    assert queue.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in queue.headers["Content-Security-Policy"]
    assert "script-src 'self';" in queue.headers["Content-Security-Policy"]


def test_the_wechat_sdk_host_is_allowed_only_when_wechat_is_configured(tmp_path):
    on = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.sqlite3", "TESTING": True,
                     "WECHAT_APP_ID": "wx1", "WECHAT_APP_SECRET": "s",
                     "WECHAT_JSSDK_URL": "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"})
    csp = on.extensions["yizhan_csp"][FINDER]
    assert "script-src 'self' https://res.wx.qq.com;" in csp
    assert "res.wx.qq.com" not in on.extensions["yizhan_csp"][STAFF]


def test_each_area_has_its_policy():
    assert policy_for("web.index", "web") is FINDER
    assert policy_for("static", None) is FINDER
    assert policy_for("reporting.form", "reporting") is REPORTING
    assert policy_for("reporting.media", "reporting") is MEDIA
    assert policy_for("staff.queue", "staff") is policy_for("staff_auth.login", "staff_auth") is STAFF
    assert policy_for("api.nearest", "api") is policy_for(None, None) is STRICT
    assert FINDER.framable and REPORTING.framable and not STAFF.framable and not STRICT.framable


def test_no_template_or_staff_script_has_inline_script():
    """Every template: <script> only with src= or as a JSON data block; no on* handler attributes."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parent.parent
    files = [*root.glob("app/**/templates/**/*.html"), *root.glob("static/app/*.js"), *root.glob("static/staff/*.js")]
    assert len(files) > 15
    for path in files:
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", text), path
