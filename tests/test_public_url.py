"""YIZHAN_PUBLIC_URL is checked when the app is created, from the environment or the app's config."""
import pytest

from app import create_app


def make_app(public_url: str):
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://", "YIZHAN_PUBLIC_URL": public_url})


@pytest.mark.parametrize("given, kept", [
    ("https://yizhan.example.cn", "https://yizhan.example.cn"),
    ("https://yizhan.example.cn/", "https://yizhan.example.cn"),
    ("HTTPS://Yizhan.Example.CN:8443/", "https://yizhan.example.cn:8443"),
    ("https://example.cn/yizhan/", "https://example.cn/yizhan"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("https://[2001:db8::1]", "https://[2001:db8::1]"),
    ("https://xn--fiq228c.cn", "https://xn--fiq228c.cn"),
    ("", ""),
])
def test_public_urls_are_kept_without_their_trailing_slash(given, kept):
    assert make_app(given).config["YIZHAN_PUBLIC_URL"] == kept


@pytest.mark.parametrize("bad", [
    "yizhan.example.cn",  # no scheme
    "ftp://yizhan.example.cn",
    "https://",
    "https:///s/1",
    "https://yizhan.example.cn/?from=qr",
    "https://yizhan.example.cn/?",
    "https://yizhan.example.cn/#map",
    "https://admin@yizhan.example.cn",
    "https://yizhan.example.cn:https",
    "https://yizhan.example.cn:99999",
    "https://yizhan example.cn",
    "https://驿站.cn",  # must be given as xn--
    "https://yizhan.example.cn\\@evil.example",
])
def test_a_bad_public_url_stops_the_app_from_starting(bad):
    with pytest.raises(ValueError, match="YIZHAN_PUBLIC_URL must be http"):
        make_app(bad)


def test_public_url_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("YIZHAN_PUBLIC_URL", "https://yizhan.example.cn/")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["YIZHAN_PUBLIC_URL"] == "https://yizhan.example.cn"
    monkeypatch.setenv("YIZHAN_PUBLIC_URL", "yizhan.example.cn")
    with pytest.raises(ValueError, match="YIZHAN_PUBLIC_URL"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
