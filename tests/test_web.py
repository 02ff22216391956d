"""Pages on both stores: absolute URLs (share cards, canonical) come from YIZHAN_PUBLIC_URL, not the Host header."""
import re

import pytest

from tests.helpers import station

CENTRE = (27.83, 113.15)


@pytest.fixture
def station_id(client, store):
    store.upsert([station("door", CENTRE[0], CENTRE[1], name="河西驿站", hours="24/7")])
    found = client.get("/api/v1/stations/nearest", query_string={"lat": CENTRE[0], "lng": CENTRE[1]}).get_json()
    return found["results"][0]["id"]


def absolute_urls(html: str) -> dict[str, str]:
    """og:url, og:image and the canonical link of a page."""
    found = {
        "og:url": re.search(r'<meta property="og:url" content="([^"]*)">', html),
        "og:image": re.search(r'<meta property="og:image" content="([^"]*)">', html),
        "canonical": re.search(r'<link rel="canonical" href="([^"]*)">', html),
    }
    return {name: match.group(1) for name, match in found.items() if match}


@pytest.mark.parametrize("page", ["/", "/s/{id}", "/s/987654321"])
def test_a_forged_host_appears_nowhere_in_a_page(app, client, station_id, monkeypatch, page):
    monkeypatch.setitem(app.config, "YIZHAN_PUBLIC_URL", "https://yizhan.example.cn")
    path = page.format(id=station_id)
    r = client.get(path + "?lang=en", headers={"Host": "evil.example"})
    html = r.get_data(as_text=True)
    assert r.status_code == (404 if path == "/s/987654321" else 200)
    assert "evil.example" not in html
    urls = absolute_urls(html)
    assert urls["og:url"] == urls["canonical"] == "https://yizhan.example.cn" + path
    assert re.fullmatch(r"https://yizhan\.example\.cn/a/[0-9a-f]{12}/icons/icon-512\.png", urls["og:image"])


def test_a_station_page_under_a_path_prefix(app, client, station_id, monkeypatch):
    """The proxy serves the app at https://example.cn/yizhan/: its own paths follow that prefix."""
    monkeypatch.setitem(app.config, "YIZHAN_PUBLIC_URL", "https://example.cn/yizhan")
    html = client.get(f"/s/{station_id}").get_data(as_text=True)
    assert "河西驿站" in html
    assert absolute_urls(html)["og:url"] == f"https://example.cn/yizhan/s/{station_id}"


def test_without_a_public_url_development_uses_the_requests_host(app, client, station_id, monkeypatch):
    monkeypatch.setitem(app.config, "YIZHAN_PUBLIC_URL", "")
    html = client.get(f"/s/{station_id}", headers={"Host": "localhost:8000"}).get_data(as_text=True)
    urls = absolute_urls(html)
    assert urls["og:url"] == urls["canonical"] == f"http://localhost:8000/s/{station_id}"
    assert urls["og:image"].startswith("http://localhost:8000/a/")


def test_redirects_point_at_the_public_url_not_the_host_header(app, client, station_id, monkeypatch):
    """Werkzeug redirects doubled slashes to the single-slash URL, pages and API alike."""
    monkeypatch.setitem(app.config, "YIZHAN_PUBLIC_URL", "https://yizhan.example.cn")
    page = client.get(f"/s//{station_id}?lang=en", headers={"Host": "evil.example"})
    assert page.status_code == 308
    assert page.headers["Location"] == f"https://yizhan.example.cn/s/{station_id}?lang=en"
    api = client.get("/api/v1//meta", headers={"Host": "evil.example"})
    assert api.status_code == 308 and api.headers["Location"] == "https://yizhan.example.cn/api/v1/meta"
