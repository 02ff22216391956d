"""Base-map tile presets. The coordinate system is what markers must be drawn in to sit on the right street."""
from __future__ import annotations

PRESETS = {
    "osm": {
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "subdomains": "",
        "coordsys": "wgs84",
        "max_zoom": 19,
        "attribution": "© OpenStreetMap contributors",
        "cors": True,  # served with Access-Control-Allow-Origin: *, so the service worker may cache them
    },
    # 天地图, the official map service; WGS-84 (CGCS2000) tiles, needs a key (TIANDITU_KEY).
    "tianditu": {
        "url": "https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=vec"
               "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}",
        "labels": "https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=cva"
                  "&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}",
        "subdomains": "01234567",
        "coordsys": "wgs84",
        "max_zoom": 18,
        "attribution": "© 天地图 Tianditu",
    },
    # Amap's public road tiles are in GCJ-02.
    "amap": {
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        "subdomains": "1234",
        "coordsys": "gcj02",
        "max_zoom": 18,
        "attribution": "© 高德地图 AutoNavi",
    },
    # No base map at all: markers on a plain background (e.g. no tile host reachable).
    "none": {"url": "", "subdomains": "", "coordsys": "wgs84", "max_zoom": 19, "attribution": ""},
}


def preset(name: str, tianditu_key: str = "") -> dict:
    chosen = dict(PRESETS.get(name) or PRESETS["osm"])
    chosen["name"] = name if name in PRESETS else "osm"
    for key in ("url", "labels"):
        if chosen.get(key):
            chosen[key] = chosen[key].replace("{key}", tianditu_key)
    return chosen
