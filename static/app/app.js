/* Yizhan (驿站) web app: nearest stations, search, filters, the 15-minute circle, station sheets.
 * Plain ES2017, no framework. Every string comes from the message catalogs; every
 * coordinate is converted at the edge (the map's system is the tile preset's). */
(function () {
  "use strict";

  var CONFIG = JSON.parse(document.getElementById("yz-config").textContent);
  var MSG = JSON.parse(document.getElementById("yz-messages").textContent);
  var API = "/api/v1";
  var MAP_SYS = CONFIG.tiles.coordsys; // markers are drawn in the base map's coordinate system
  var CHIPS = ["toilet", "accessible_toilet", "baby_change", "drinking_water", "hot_water",
    "battery_swap", "ebike_charging", "rest_area", "microwave"];
  // Travel modes come from the server (app/network/modes.py); their speeds from /api/v1/meta.
  var MODES = CONFIG.modes;
  var UA = navigator.userAgent || "";
  var IN_WECHAT = /MicroMessenger/i.test(UA);
  var IN_MINIPROGRAM = /miniProgram/i.test(UA) || window.__wxjs_environment === "miniprogram";

  var state = {
    place: null, // {lat, lng, sys}: where the person is, or the place they tapped or searched for
    placeName: null, // the street or place chosen in the search box, while the list is around it
    zoomTo: 0, // zoom in to at least this when the list's place is next drawn (after locating or searching)
    origin: null, // the same place in MAP_SYS, as the server converted it
    amenities: [],
    open: false,
    circle: null, // {mode, minutes} while the service circle is on
    zoom: 15,
    meta: null,
    results: [],
    active: null,
    wxReady: false,
    brand: "", // a courier's battery-swap brand (an organisation code) and battery type, kept on the phone
    battery: "",
    mine: false, // only the saved brand's (and battery type's) stations
    charged: false // "a charged battery of my type now" (available_now)
  };
  var map = null, cluster = null, meMarker = null, areaLayer = null, markers = {};
  var viewMarkers = {}; // other stations in view (not in the list), so the map shows what is around
  var viewTimer = null;
  var VIEW_MIN_ZOOM = 12; // below this a map holds too many stations to fetch them all
  var VIEW_LIST = 20; // stations listed from the view when there is no place
  var LOCATED_ZOOM = 15; // streets and their stations, after locating or choosing a place

  // -- text -------------------------------------------------------------------------
  function t(key, vars) {
    var text = MSG[key] || key;
    Object.keys(vars || {}).forEach(function (k) { text = text.split("{" + k + "}").join(String(vars[k])); });
    return text;
  }
  function label(list, id) {
    var found = (list || []).filter(function (x) { return x.id === id; })[0];
    return found ? found.labels[CONFIG.lang] || found.labels.en : id;
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }
  function distanceText(m) {
    return m < 1000 ? t("distance.m", { n: Math.round(m) }) : t("distance.km", { n: (m / 1000).toFixed(1) });
  }
  function clock(iso) { // "2026-11-27T06:00:00+08:00" -> "06:00" (the station's own wall clock)
    if (!iso) return "";
    var m = /([+-])(\d\d):(\d\d)$/.exec(iso), offset = 0;
    if (m) offset = (m[1] === "-" ? -1 : 1) * (parseInt(m[2], 10) * 60 + parseInt(m[3], 10));
    var today = new Date(Date.now() + offset * 60000).toISOString().slice(0, 10); // today on the station's clock
    return iso.slice(0, 10) === today ? iso.slice(11, 16) : iso.slice(5, 10) + " " + iso.slice(11, 16);
  }
  function openText(s) {
    if (s.open_state === "open") return s.next_change ? t("open.until", { time: clock(s.next_change) }) :
      (s.opening_hours === "24/7" ? t("open.always") : t("open.open"));
    if (s.open_state === "closed") return s.next_change ? t("open.closed") + " · " + t("open.opens", { time: clock(s.next_change) }) : t("open.closed");
    return t("open.unknown");
  }
  // OSM opening_hours in words for the common forms ("Mo-Fr 08:00-18:00; PH off");
  // anything unusual is shown as written, which is still readable.
  function hoursInWords(text) {
    if (!text) return "";
    if (text.trim() === "24/7") return t("open.always");
    var days = { Mo: 0, Tu: 1, We: 2, Th: 3, Fr: 4, Sa: 5, Su: 6 };
    var out = text.replace(/\b(Mo|Tu|We|Th|Fr|Sa|Su)\b/g, function (d) { return t("day." + days[d]); });
    return out.replace(/\bPH\b/g, t("day.ph")).replace(/\boff\b/g, t("hours.off"))
      .replace(/(\S)-(\S)/g, "$1–$2").replace(/;\s*/g, t("hours.sep"));
  }
  // "Inspected today", or the day it last was, on the device's own calendar (the person is
  // at or near the station, so in its time zone).
  function inspectedText(iso) {
    var at = new Date(iso);
    if (isNaN(at.getTime())) return "";
    if (at.toDateString() === new Date().toDateString()) return t("sheet.inspected_today");
    function pad(n) { return (n < 10 ? "0" : "") + n; }
    return t("sheet.inspected_on", { date: at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) });
  }
  // The one line under the header: what is going on, and (optionally) one button to act on it.
  function status(text, action) {
    var box = document.getElementById("status");
    box.textContent = text || "";
    if (text && action) {
      var button = el("button", { type: "button", class: "status-action", text: action.label });
      button.addEventListener("click", action.run);
      box.appendChild(document.createTextNode(" "));
      box.appendChild(button);
    }
    box.hidden = !text;
  }

  // -- coordinates: forward GCJ-02 / BD-09 (same algorithm and region as app/geo/coordsys.py) --
  var SHIFTED = [[42.8899, 79.4462, 49.2204, 96.33], [39.3742, 109.6872, 54.1415, 135.0002],
    [29.5297, 73.1246, 42.8899, 124.143255], [26.7186, 82.9684, 29.5297, 97.0352],
    [20.414096, 97.0253, 29.5297, 124.367395], [17.871542, 107.975793, 20.414096, 111.744104]];
  var HOLES = [[21.785006, 119.921265, 25.398623, 122.497559], [20.0988, 101.8652, 22.284, 106.665],
    [20.4878, 106.4525, 21.5422, 108.051], [50.3257, 109.0323, 55.8175, 119.127],
    [49.5574, 127.4568, 55.8175, 137.0227], [42.5692, 131.2662, 44.8922, 137.0227]];
  function inRect(r, lat, lng) { return r[0] <= lat && lat <= r[2] && r[1] <= lng && lng <= r[3]; }
  function isShifted(lat, lng) {
    return SHIFTED.some(function (r) { return inRect(r, lat, lng); }) && !HOLES.some(function (r) { return inRect(r, lat, lng); });
  }
  function wgsToGcj(lat, lng) {
    if (!isShifted(lat, lng)) return [lat, lng];
    var PI = Math.PI, A = 6378245.0, EE = 0.00669342162296594323, x = lng - 105, y = lat - 35;
    var dLat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) +
      (20 * Math.sin(6 * x * PI) + 20 * Math.sin(2 * x * PI)) * 2 / 3 +
      (20 * Math.sin(y * PI) + 40 * Math.sin(y / 3 * PI)) * 2 / 3 +
      (160 * Math.sin(y / 12 * PI) + 320 * Math.sin(y * PI / 30)) * 2 / 3;
    var dLng = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) +
      (20 * Math.sin(6 * x * PI) + 20 * Math.sin(2 * x * PI)) * 2 / 3 +
      (20 * Math.sin(x * PI) + 40 * Math.sin(x / 3 * PI)) * 2 / 3 +
      (150 * Math.sin(x / 12 * PI) + 300 * Math.sin(x / 30 * PI)) * 2 / 3;
    var rad = lat / 180 * PI, magic = 1 - EE * Math.sin(rad) * Math.sin(rad), sq = Math.sqrt(magic);
    dLat = (dLat * 180) / ((A * (1 - EE)) / (magic * sq) * PI);
    dLng = (dLng * 180) / (A / sq * Math.cos(rad) * PI);
    return [lat + dLat, lng + dLng];
  }
  function gcjToBd(lat, lng) {
    if (!isShifted(lat, lng)) return [lat, lng];
    var XPI = Math.PI * 3000 / 180, z = Math.sqrt(lng * lng + lat * lat) + 0.00002 * Math.sin(lat * XPI);
    var theta = Math.atan2(lat, lng) + 0.000003 * Math.cos(lng * XPI);
    return [z * Math.sin(theta) + 0.006, z * Math.cos(theta) + 0.0065];
  }
  // A station's position (in MAP_SYS) in the systems navigation apps expect.
  function navPositions(lat, lng) {
    var gcj = MAP_SYS === "gcj02" ? [lat, lng] : wgsToGcj(lat, lng);
    return { gcj02: gcj, bd09: gcjToBd(gcj[0], gcj[1]), plain: [lat, lng], china: isShifted(gcj[0], gcj[1]) };
  }
  // Read-only hooks for the browser tests (and for anyone debugging on a phone).
  window.Yizhan = {
    coords: { wgsToGcj: wgsToGcj, gcjToBd: gcjToBd, isShifted: isShifted },
    markers: function () {
      return Object.keys(markers).map(function (id) { var p = markers[id].getLatLng(); return { id: +id, lat: p.lat, lng: p.lng }; });
    },
    viewMarkers: function () {
      return Object.keys(viewMarkers).map(function (id) { var p = viewMarkers[id].getLatLng(); return { id: +id, lat: p.lat, lng: p.lng }; });
    },
    view: function () { var c = map.getCenter(); return { lat: c.lat, lng: c.lng, zoom: map.getZoom() }; },
    mapSys: MAP_SYS
  };

  // -- travel modes ----------------------------------------------------------------------
  // A circle is written "<mode><minutes>" in URLs and buttons (circle=walk15).
  function parseCircle(token) {
    var found = /^([a-z_]+?)([0-9]+)$/.exec(token || "");
    if (!found) return null;
    var known = MODES.some(function (m) { return m.id === found[1]; });
    var minutes = parseInt(found[2], 10);
    if (!known || minutes < CONFIG.minutes.min || minutes > CONFIG.minutes.max) return null;
    return { mode: found[1], minutes: minutes };
  }
  function circleToken(circle) { return circle ? circle.mode + circle.minutes : ""; }
  function metresPerMinute(mode) {
    var known = ((state.meta && state.meta.modes) || []).filter(function (m) { return m.id === mode; })[0];
    return known ? known.metres_per_minute : MODES.filter(function (m) { return m.id === mode; })[0].metres_per_minute;
  }

  // -- URL state ----------------------------------------------------------------------
  function readUrl() {
    var q = new URLSearchParams(location.search);
    var lat = parseFloat(q.get("lat")), lng = parseFloat(q.get("lng"));
    if (isFinite(lat) && isFinite(lng)) {
      state.place = { lat: lat, lng: lng, sys: q.get("coordsys") || "wgs84" };
      state.placeName = q.get("q") || null; // a searched street or place: the list is "near 人民路"
    }
    state.amenities = (q.get("amenity") || "").split(",").filter(Boolean);
    state.open = q.get("open") === "1";
    state.circle = parseCircle(q.get("circle"));
    state.zoom = parseInt(q.get("z"), 10) || 15;
  }
  function writeUrl() {
    var q = new URLSearchParams(location.search);
    ["lat", "lng", "coordsys", "q", "amenity", "open", "circle", "z"].forEach(function (k) { q.delete(k); });
    if (state.place && !CONFIG.station) {
      q.set("lat", state.place.lat.toFixed(6));
      q.set("lng", state.place.lng.toFixed(6));
      if (state.place.sys !== "wgs84") q.set("coordsys", state.place.sys);
      if (state.placeName) q.set("q", state.placeName);
    }
    if (map) q.set("z", String(map.getZoom()));
    if (state.amenities.length) q.set("amenity", state.amenities.join(","));
    if (state.open) q.set("open", "1");
    if (state.circle) q.set("circle", circleToken(state.circle));
    var search = q.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }

  // -- network ------------------------------------------------------------------------
  // Rejects with {http: true, message} when the server answered with an error (shown as
  // is), and with the fetch's own error when there was no answer at all (offline).
  function getJSON(url, signal) {
    return fetch(url, { headers: { Accept: "application/json" }, signal: signal }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (body) {
        if (!resp.ok) throw { http: true, message: (body.error && body.error.message) || resp.statusText };
        var offline = resp.headers.get("X-Yizhan-Offline") ? resp.headers.get("X-Yizhan-Fetched-At") : null;
        return { body: body, offlineAt: offline };
      });
    });
  }
  // A courier's brand and battery type stay on this phone (localStorage), never in the URL.
  // They narrow the search only while "只看我的品牌" is on: a courier also needs water and a toilet,
  // which no battery brand runs. Saving a brand turns it on; the courier turns it off in one tap.
  function readCourier() {
    try {
      state.brand = localStorage.getItem("yz:brand") || "";
      state.battery = localStorage.getItem("yz:battery") || "";
      state.mine = Boolean(state.brand || state.battery) && localStorage.getItem("yz:mine") !== "0";
    } catch (e) { /* private mode: asked again next time */ }
  }
  function saveCourier(brand, battery) {
    state.brand = brand;
    state.battery = battery;
    state.mine = Boolean(brand || battery);
    try {
      localStorage.setItem("yz:brand", brand);
      localStorage.setItem("yz:battery", battery);
      localStorage.setItem("yz:mine", state.mine ? "1" : "0");
    } catch (e) { /* private mode */ }
  }
  function setMine(on) {
    state.mine = on;
    try { localStorage.setItem("yz:mine", on ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  function courierFilters(q) {
    if (state.mine && state.brand) q.set("org", state.brand);
    if (state.mine && state.battery) q.set("battery_type", state.battery);
    if (state.charged) q.set("available_now", "1");
  }
  // Live status: counts only while fresh, with their age; a stale status is "unknown", never a count.
  function ageText(seconds) {
    if (seconds < 60) return t("live.age_now");
    if (seconds < 3600) return t("live.age_min", { n: Math.floor(seconds / 60) });
    return t("live.age_hour", { n: Math.floor(seconds / 3600) });
  }
  function liveText(live) {
    if (!live || live.state === "none") return "";
    if (live.state !== "fresh") return t("live.unknown");
    var n = live.num_batteries_available;
    if (state.battery && live.battery_types_available) {
      var mine = live.battery_types_available.filter(function (b) { return b.battery_type === state.battery; })[0];
      n = mine ? mine.count : 0;
    }
    var counted = n != null ? t("live.count", { n: n }) : "";
    var plugs = (live.connectors || []).filter(function (c) { return c.status === "AVAILABLE"; }).length;
    if (live.connectors && live.connectors.length) counted += (counted ? " · " : "") + t("live.connectors", { n: plugs, total: live.connectors.length });
    return counted + " · " + ageText(live.age_s);
  }
  function remember(url, body) {
    try { localStorage.setItem("yz:last", JSON.stringify({ url: url, body: body, at: new Date().toISOString() })); } catch (e) { /* private mode */ }
  }
  function lastAnswer() {
    try { return JSON.parse(localStorage.getItem("yz:last") || "null"); } catch (e) { return null; }
  }

  // -- map ----------------------------------------------------------------------------
  function toMap(wgs) { return MAP_SYS === "gcj02" ? wgsToGcj(wgs[0], wgs[1]) : wgs; }
  function initMap() {
    if (!window.L) return;
    map = L.map("map", { zoomControl: true, attributionControl: true, maxZoom: CONFIG.tiles.max_zoom || 19, minZoom: 3 });
    map.attributionControl.setPrefix("Leaflet");
    if (CONFIG.tiles.url) {
      L.tileLayer(CONFIG.tiles.url, {
        subdomains: CONFIG.tiles.subdomains || "abc", maxZoom: CONFIG.tiles.max_zoom, attribution: CONFIG.tiles.attribution,
        // CORS tiles can be checked and cached by the service worker; opaque ones are not kept.
        crossOrigin: CONFIG.tiles.cors ? "" : undefined
      }).addTo(map);
      if (CONFIG.tiles.labels) L.tileLayer(CONFIG.tiles.labels, { subdomains: CONFIG.tiles.subdomains, maxZoom: CONFIG.tiles.max_zoom }).addTo(map);
    }
    // Without a position yet, the city: the configured centre, or the stations' extent (app.web start_view).
    var start = CONFIG.start;
    if (start.bounds && !state.place) {
      map.fitBounds([toMap(start.bounds[0]), toMap(start.bounds[1])], { maxZoom: 16, padding: [8, 8] });
    } else {
      map.setView(toMap(start.center || [(start.bounds[0][0] + start.bounds[1][0]) / 2, (start.bounds[0][1] + start.bounds[1][1]) / 2]),
        state.place ? state.zoom : start.zoom || state.zoom);
    }
    cluster = L.markerClusterGroup ? L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false }) : L.layerGroup();
    cluster.addTo(map);
    map.on("click", function (e) { setPlace(e.latlng.lat, e.latlng.lng, MAP_SYS); });
    map.on("zoomend", writeUrl);
    map.on("moveend", function () { clearTimeout(viewTimer); viewTimer = setTimeout(loadView, 300); });
  }
  function pinIcon(kind) {
    return L.divIcon({ className: "", html: '<div class="pin k-' + kind + '"><span>' + t("badge." + kind) + "</span></div>",
      iconSize: [28, 28], iconAnchor: [14, 28] });
  }
  // Every matching station in the map's view (up to 500, clustered), besides the listed ones.
  // Without a place (no position yet) they are also the list: the page never opens empty.
  function loadView() {
    if (!map) return;
    if (map.getZoom() < VIEW_MIN_ZOOM) { if (!state.place) renderView([], false); return; }
    var b = map.getBounds(), q = new URLSearchParams();
    function clamp(v, lim) { return Math.max(-lim, Math.min(lim, v)).toFixed(6); }
    q.set("bbox", [clamp(b.getWest(), 180), clamp(b.getSouth(), 90), clamp(b.getEast(), 180), clamp(b.getNorth(), 90)].join(","));
    q.set("coordsys", MAP_SYS);
    q.set("limit", "500");
    if (state.amenities.length) q.set("amenity", state.amenities.join(","));
    courierFilters(q);
    getJSON(API + "/stations?" + q.toString()).then(function (res) {
      if (!state.place) renderView(res.body.features, res.body.truncated);
      Object.keys(viewMarkers).forEach(function (id) { cluster.removeLayer(viewMarkers[id]); });
      viewMarkers = {};
      res.body.features.forEach(function (f) {
        if (markers[f.id]) return;
        var p = f.properties, c = f.geometry.coordinates;
        var m = L.marker([c[1], c[0]], { icon: pinIcon(p.kind), title: p.name, alt: p.name, keyboard: true, opacity: 0.75 });
        m.on("click", function () { openSheet(f.id); });
        viewMarkers[f.id] = m;
        cluster.addLayer(m);
      });
    }).catch(function () { /* the list still works */ });
  }
  // The stations in view as the list, nearest the map's centre first (a plane approximation is
  // enough to order a screenful), no distance shown: there is no "you" to measure from.
  function renderView(features, truncated) {
    if (state.place || !state.meta) return; // a place was chosen meanwhile; or labels not here yet (start() calls again)
    var c = map.getCenter(), k = Math.cos(c.lat * Math.PI / 180);
    function away(f) { var p = f.geometry.coordinates, dy = p[1] - c.lat, dx = (p[0] - c.lng) * k; return dy * dy + dx * dx; }
    var shown = features.slice().sort(function (a, b) { return away(a) - away(b) || a.id - b.id; }).slice(0, VIEW_LIST);
    document.getElementById("list-title").textContent = t("list.title_view");
    var note = document.getElementById("circle-note");
    note.hidden = !(truncated || features.length > shown.length);
    note.textContent = t("list.view_more", { n: shown.length });
    var list = document.getElementById("list");
    list.textContent = "";
    shown.forEach(function (f) {
      var s = f.properties;
      s.id = f.id;
      list.appendChild(el("li", {}, [stationItem(s, label(state.meta.kinds, s.kind), null, function () { openSheet(f.id); })]));
    });
    var empty = document.getElementById("empty");
    empty.hidden = shown.length > 0;
    empty.textContent = map.getZoom() < VIEW_MIN_ZOOM ? t("empty.zoom_in") : t("empty.view");
  }
  function drawResults(results, polygon) {
    if (!map) return;
    cluster.clearLayers();
    markers = {};
    viewMarkers = {};
    results.forEach(function (s) {
      var m = L.marker([s.lat, s.lng], { icon: pinIcon(s.kind), title: s.name, alt: s.name, keyboard: true });
      m.on("click", function () { select(s.id, true); });
      markers[s.id] = m;
      cluster.addLayer(m);
    });
    if (areaLayer) { map.removeLayer(areaLayer); areaLayer = null; }
    if (polygon) {
      areaLayer = L.geoJSON(polygon, { style: { color: "#0a7d5a", weight: 2, fillColor: "#0a7d5a", fillOpacity: 0.12 }, interactive: false });
      areaLayer.addTo(map);
    }
    if (state.origin) {
      var here = [state.origin.lat, state.origin.lng], title = state.placeName || t("location.here");
      if (meMarker && meMarker.options.title !== title) { map.removeLayer(meMarker); meMarker = null; }
      if (!meMarker) meMarker = L.marker(here, { icon: L.divIcon({ className: "", html: '<div class="me"></div>', iconSize: [16, 16] }), title: title, keyboard: false, zIndexOffset: 1000 }).addTo(map);
      else meMarker.setLatLng(here);
      if (areaLayer) map.fitBounds(areaLayer.getBounds(), { padding: [8, 8] });
      else map.setView(here, Math.max(map.getZoom(), state.zoomTo));
      state.zoomTo = 0;
    }
    loadView();
  }

  // -- loading and rendering ------------------------------------------------------------
  function query() {
    var p = state.place, q = new URLSearchParams();
    q.set("lat", String(p.lat));
    q.set("lng", String(p.lng));
    q.set("coordsys", p.sys);
    q.set("out_coordsys", MAP_SYS);
    if (state.amenities.length) q.set("amenity", state.amenities.join(","));
    if (state.open) { q.set("open_now", "1"); q.set("include_unknown", "0"); }
    courierFilters(q);
    if (state.circle) {
      q.set("mode", state.circle.mode);
      q.set("minutes", String(state.circle.minutes));
      q.set("limit", "50");
      return API + "/service-circle?" + q.toString();
    }
    q.set("limit", "20");
    return API + "/stations/nearest?" + q.toString();
  }
  function load() {
    if (!state.place) { writeUrl(); return loadView(); } // no place yet: the filters apply to the stations in view
    writeUrl();
    var url = query();
    var list = document.getElementById("list");
    list.setAttribute("aria-busy", "true");
    return getJSON(url).then(function (res) {
      remember(url, res.body);
      status(res.offlineAt ? t("offline.banner", { time: new Date(res.offlineAt).toTimeString().slice(0, 5) }) : "");
      render(res.body);
    }).catch(function (err) {
      if (err && err.http) { status(err.message); return; }
      // No answer at all: the last answer for this same question, if we kept one
      // (web-views without a service worker), clearly marked as old.
      var last = lastAnswer();
      if (last && last.url === url) {
        status(t("offline.banner", { time: new Date(last.at).toTimeString().slice(0, 5) }));
        render(last.body);
      } else {
        status(t("error.network"));
      }
    }).then(function () { list.removeAttribute("aria-busy"); });
  }
  // One station in the list: name, what and how far (``meta``), open state when known, rating, live stock.
  function stationItem(s, meta, open, onClick) {
    var button = el("button", { type: "button", class: "item", "data-id": String(s.id) }, [
      el("span", { class: "badge k-" + s.kind, "aria-hidden": "true", text: t("badge." + s.kind) }),
      el("span", { class: "item-main" }, [
        el("span", { class: "item-name", text: s.name }),
        el("span", { class: "item-meta", text: meta }),
        open ? el("span", { class: "item-meta state-" + s.open_state, text: open }) : null,
        s.rating ? el("span", { class: "item-meta rating", text: ratingText(s.rating) }) : null,
        liveText(s.live) ? el("span", { class: "item-meta live live-" + s.live.state, text: liveText(s.live) }) :
          s.batteries_available != null ? el("span", { class: "item-meta batteries", text: t("batteries", { n: s.batteries_available }) }) : null
      ])
    ]);
    button.addEventListener("click", onClick);
    return button;
  }
  function render(body) {
    state.results = body.results || [];
    state.origin = body.origin || null;
    var circle = state.circle ? state.circle.mode : "";
    document.getElementById("list-title").textContent = circle ? t("list.title_circle") :
      state.placeName ? t("list.title_near", { name: state.placeName }) : t("list.title");
    var note = document.getElementById("circle-note");
    if (circle) {
      note.hidden = false;
      note.textContent = body.method === "radius" ? t("circle.radius") :
        t("circle.network", { count: body.count, mode: t("circle." + circle) });
    } else {
      note.hidden = true;
    }
    var list = document.getElementById("list");
    list.textContent = "";
    state.results.forEach(function (s) {
      var d = s.distance_m;
      var minutes = circle ? t("minutes.travel", { n: Math.ceil(s.travel_minutes), mode: t("circle." + circle) }) :
        MODES.map(function (m) { return t("minutes." + m.id, { n: Math.max(1, Math.ceil(d / metresPerMinute(m.id))) }); }).join(" · ");
      var meta = label(state.meta && state.meta.kinds, s.kind) + " · " + distanceText(d) + " · " + minutes;
      list.appendChild(el("li", {}, [stationItem(s, meta, openText(s), function () { select(s.id, false); })]));
    });
    var empty = document.getElementById("empty");
    empty.hidden = state.results.length > 0;
    if (!state.results.length) {
      var active = state.amenities.map(function (a) { return label(state.meta && state.meta.amenities, a); });
      if (state.open) active.push(t("filter.open_now"));
      if (state.mine && state.brand) active.push(t("courier.brand_is", { brand: state.brand }));
      if (state.mine && state.battery) active.push(state.battery);
      if (state.charged) active.push(t("filter.available_now"));
      empty.textContent = active.length ? t("empty.relax", { filters: active.join(t("list.sep")) }) : t("empty.none");
    }
    drawResults(state.results, body.polygon || null);
  }

  // -- selection and the station sheet ----------------------------------------------------
  function select(id, fromMap) {
    state.active = id;
    Array.prototype.forEach.call(document.querySelectorAll(".item"), function (b) {
      b.classList.toggle("active", b.getAttribute("data-id") === String(id));
    });
    var m = markers[id];
    if (map && m) {
      if (cluster.zoomToShowLayer) cluster.zoomToShowLayer(m, function () { map.panTo(m.getLatLng()); });
      else map.panTo(m.getLatLng());
    }
    openSheet(id);
  }
  function navLinks(s) {
    var pos = navPositions(s.lat, s.lng), name = encodeURIComponent(s.name), box = el("div", { class: "navs" });
    function link(text, href) { box.appendChild(el("a", { href: href, text: text, rel: "noopener", target: "_blank" })); }
    if (IN_WECHAT && state.wxReady) {
      var b = el("button", { type: "button", text: t("nav.wechat") });
      b.addEventListener("click", function () {
        window.wx.openLocation({ latitude: pos.gcj02[0], longitude: pos.gcj02[1], name: s.name, address: s.address || "", scale: 16 });
      });
      box.appendChild(b);
    }
    var g = pos.gcj02, b9 = pos.bd09;
    link(t("nav.amap"), "https://uri.amap.com/navigation?to=" + g[1] + "," + g[0] + "," + name + "&mode=walk&coordinate=gaode&callnative=1");
    link(t("nav.tencent"), "https://apis.map.qq.com/uri/v1/routeplan?type=walk&to=" + name + "&tocoord=" + g[0] + "," + g[1] + "&referer=yizhan");
    link(t("nav.baidu"), "https://api.map.baidu.com/direction?destination=latlng:" + b9[0] + "," + b9[1] + "|name:" + name + "&mode=walking&coord_type=bd09ll&output=html&src=yizhan");
    if (!pos.china) {
      link(t("nav.apple"), "https://maps.apple.com/?daddr=" + pos.plain[0] + "," + pos.plain[1] + "&dirflg=w");
      link(t("nav.google"), "https://www.google.com/maps/dir/?api=1&destination=" + pos.plain[0] + "," + pos.plain[1] + "&travelmode=walking");
    }
    return box;
  }
  // -- ratings: ★ average (Bayesian, from the server) and a 1–5 star + tags form -----------
  function ratingText(r) {
    return r ? t("rating.shown", { average: r.average.toFixed(1), count: r.count }) : t("rating.none");
  }
  function ratingForm(s, shown) {
    var chosen = { stars: 0, tags: [] };
    var form = el("form", { class: "rate", "aria-label": t("rating.ask") });
    var stars = el("div", { class: "stars", role: "group", "aria-label": t("rating.ask") });
    var starButtons = [1, 2, 3, 4, 5].map(function (n) {
      var b = el("button", { type: "button", class: "star", "aria-pressed": "false", "aria-label": t("rating.stars", { n: n }), text: "★" });
      b.addEventListener("click", function () {
        chosen.stars = n;
        starButtons.forEach(function (x, i) { x.setAttribute("aria-pressed", String(i < n)); });
        send.disabled = false;
      });
      stars.appendChild(b);
      return b;
    });
    var tags = el("div", { class: "rate-tags" }, ((state.meta && state.meta.rating_tags) || []).map(function (tag) {
      var chip = el("button", { type: "button", class: "chip", "aria-pressed": "false", text: label(state.meta.rating_tags, tag.id) });
      chip.addEventListener("click", function () {
        var i = chosen.tags.indexOf(tag.id);
        if (i >= 0) chosen.tags.splice(i, 1); else chosen.tags.push(tag.id);
        chip.setAttribute("aria-pressed", String(i < 0));
      });
      return chip;
    }));
    var send = el("button", { type: "submit", class: "rate-send", text: t("rating.send") });
    send.disabled = true;
    var said = el("p", { class: "note", role: "status" });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!chosen.stars) return;
      send.disabled = true;
      // The device cookie (set by the server) makes a repeat within 12 hours replace this rating.
      postJSON(API + "/stations/" + s.id + "/ratings", { stars: chosen.stars, tags: chosen.tags }).then(function (body) {
        shown.textContent = ratingText(body.rating);
        said.textContent = t(body.replaced ? "rating.replaced" : "rating.thanks");
      }).catch(function (err) {
        said.textContent = err && err.http ? err.message : t("error.network");
      }).then(function () { send.disabled = false; });
    });
    form.appendChild(el("h3", { class: "note", text: t("rating.ask") }));
    form.appendChild(stars);
    form.appendChild(tags);
    form.appendChild(el("div", { class: "navs" }, [send]));
    form.appendChild(said);
    return form;
  }
  // -- check-ins: one tap says whether the station worked ------------------------------
  function postJSON(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (answer) {
        if (!resp.ok) throw { http: true, message: (answer.error && answer.error.message) || resp.statusText };
        return answer;
      });
    });
  }
  function checkInBox(s) {
    var said = el("p", { class: "note", role: "status" });
    var box = el("div", { class: "rate-tags checkins", role: "group", "aria-label": t("checkin.ask") },
      ((state.meta && state.meta.checkin_outcomes) || []).map(function (o) {
        var b = el("button", { type: "button", class: "chip", "data-outcome": o.id, text: label(state.meta.checkin_outcomes, o.id) });
        b.addEventListener("click", function () {
          postJSON(API + "/stations/" + s.id + "/checkins", { outcome: o.id }).then(function () {
            said.textContent = t("checkin.thanks");
          }).catch(function (err) { said.textContent = err && err.http ? err.message : t("error.network"); });
        });
        return b;
      }));
    return el("div", { class: "rate" }, [el("h3", { class: "note", text: t("checkin.ask") }), box, said]);
  }
  var lastFocus = null;
  function openSheet(id) {
    return getJSON(API + "/stations/" + id + "?out_coordsys=" + MAP_SYS).then(function (res) {
      var s = res.body, meta = state.meta || {};
      document.getElementById("sheet-title").textContent = s.name;
      var content = document.getElementById("sheet-content");
      content.textContent = "";
      content.appendChild(el("p", { class: "item-meta state-" + s.open_state, text: label(meta.kinds, s.kind) + " · " + openText(s) }));
      // Closed by its staff for now (repairs, an event): say why.
      if (s.open_state === "closed" && s.closed_reason) content.appendChild(el("p", { class: "item-meta state-closed", text: t("sheet.closed_reason", { reason: s.closed_reason }) }));
      if (s.batteries_available != null) content.appendChild(el("p", { class: "batteries", text: t("batteries", { n: s.batteries_available }) }));
      var shownRating = el("p", { class: "rating", text: ratingText(s.rating) });
      content.appendChild(shownRating);
      if (s.last_inspected_at) content.appendChild(el("p", { class: "note", text: inspectedText(s.last_inspected_at) }));
      var groups = { yes: [], no: [], unknown: [] }, broken = s.out_of_order || [];
      Object.keys(s.amenity_states || {}).forEach(function (a) { groups[s.amenity_states[a]].push(a); });
      ["yes", "no", "unknown"].forEach(function (g) {
        if (!groups[g].length) return;
        content.appendChild(el("h3", { class: "note", text: t("sheet.amenities_" + g) }));
        content.appendChild(el("ul", { class: "amen" }, groups[g].map(function (a) {
          // It has it, but it is out of order until fixed: not shown as available.
          var out = g === "yes" && broken.indexOf(a) >= 0;
          return el("li", { class: out ? "unknown out-of-order" : g, text: label(meta.amenities, a) + (out ? " · " + t("sheet.out_of_order") : "") });
        })));
      });
      var dl = el("dl", { class: "dl" });
      function row(k, v) { if (v) { dl.appendChild(el("dt", { text: t(k) })); dl.appendChild(el("dd", { text: v })); } }
      row("sheet.hours", hoursInWords(s.opening_hours));
      row("sheet.address", s.address);
      row("sheet.access", label(meta.access, s.access) + (s.fee ? " · " + t("sheet.fee_" + s.fee) : ""));
      row("sheet.operator", s.operator);
      content.appendChild(dl);
      content.appendChild(navLinks(s));
      content.appendChild(ratingForm(s, shownRating));
      content.appendChild(checkInBox(s));
      // The report form is a page of its own (works without this script and the service worker).
      content.appendChild(el("div", { class: "navs" }, [
        el("a", { href: "/s/" + s.id + "/report?lang=" + encodeURIComponent(CONFIG.lang), class: "report", text: t("report.link") })
      ]));
      var sheet = document.getElementById("sheet");
      lastFocus = document.activeElement;
      sheet.hidden = false;
      document.getElementById("sheet-close").focus();
      if (IN_WECHAT && state.wxReady) share(s.name, label(meta.kinds, s.kind) + " · " + (s.address || ""), location.origin + "/s/" + s.id);
    }).catch(function (err) { status(err && err.http ? err.message : t("error.network")); });
  }
  function closeSheet() {
    document.getElementById("sheet").hidden = true;
    if (lastFocus) lastFocus.focus();
  }

  // -- filters ----------------------------------------------------------------------
  function buildChips() {
    var nav = document.getElementById("chips");
    nav.textContent = "";
    CHIPS.forEach(function (a) {
      var on = state.amenities.indexOf(a) >= 0;
      var chip = el("button", { type: "button", class: "chip", "aria-pressed": String(on), "data-amenity": a, text: label(state.meta.amenities, a) });
      chip.addEventListener("click", function () {
        var i = state.amenities.indexOf(a);
        if (i >= 0) state.amenities.splice(i, 1); else state.amenities.push(a);
        chip.setAttribute("aria-pressed", String(i < 0));
        load();
      });
      nav.appendChild(chip);
    });
    var open = el("button", { type: "button", class: "chip", "aria-pressed": String(state.open), "data-filter": "open", text: t("filter.open_now") });
    open.addEventListener("click", function () {
      state.open = !state.open;
      open.setAttribute("aria-pressed", String(state.open));
      load();
    });
    nav.appendChild(open);
    nav.appendChild(courierForm());
  }
  // "我的品牌": a courier's brand and battery type, remembered on the phone and sent as filters.
  function courierForm() {
    // The brands running cabinets (from /meta) are offered as suggestions; a code typed by hand still works.
    var brands = el("datalist", { id: "brands" }, ((state.meta && state.meta.brands) || []).map(function (b) {
      return el("option", { value: b.code, label: b.name, text: b.name });
    }));
    var brand = el("input", { type: "text", name: "brand", value: state.brand, autocomplete: "off", list: "brands", "aria-label": t("courier.brand"), placeholder: t("courier.brand") });
    var battery = el("input", { type: "text", name: "battery", value: state.battery, autocomplete: "off", "aria-label": t("courier.battery"), placeholder: t("courier.battery") });
    var charged = el("button", { type: "button", class: "chip", "aria-pressed": String(state.charged), "data-filter": "available_now", text: t("filter.available_now") });
    charged.addEventListener("click", function () {
      state.charged = !state.charged;
      charged.setAttribute("aria-pressed", String(state.charged));
      load();
    });
    var mine = el("button", { type: "button", class: "chip courier-mine", "aria-pressed": String(state.mine), "data-filter": "mine", text: t("courier.mine") });
    mine.hidden = !(state.brand || state.battery);
    mine.addEventListener("click", function () {
      setMine(!state.mine);
      mine.setAttribute("aria-pressed", String(state.mine));
      load();
    });
    var form = el("form", { class: "courier", "aria-label": t("courier.label") }, [
      brand, brands, battery, el("button", { type: "submit", class: "chip courier-save", text: t("courier.save") }), mine, charged
    ]);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      saveCourier(brand.value.trim().toLowerCase(), battery.value.trim());
      mine.hidden = !(state.brand || state.battery);
      mine.setAttribute("aria-pressed", String(state.mine));
      load();
    });
    return form;
  }
  function bindCircle() {
    Array.prototype.forEach.call(document.querySelectorAll(".seg"), function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-circle") === circleToken(state.circle)));
      b.addEventListener("click", function () {
        state.circle = parseCircle(b.getAttribute("data-circle"));
        Array.prototype.forEach.call(document.querySelectorAll(".seg"), function (x) { x.setAttribute("aria-pressed", String(x === b)); });
        load();
      });
    });
  }

  // -- search box: suggestions as you type (the ARIA 1.2 combobox pattern) -----------------
  // Stations, streets and places by name, characters, pinyin or initials (/api/v1/search),
  // ranked by distance from the map's centre. Plain DOM and fetch: WeChat's browser has both.
  var SEARCH_DELAY_MS = 200; // wait for a pause in typing before asking
  var suggestion = { timer: null, abort: null, asked: 0, results: [], active: -1 };
  function searchParts() {
    return { input: document.getElementById("search-input"), list: document.getElementById("search-list"),
      hint: document.getElementById("search-hint"), live: document.getElementById("search-live") };
  }
  function placeLabel(r) {
    if (r.type === "station") return label(state.meta && state.meta.kinds, r.kind);
    return MSG["place." + r.kind] || t(r.type === "street" ? "place.street" : "place.other");
  }
  function showHint(text) {
    var parts = searchParts();
    parts.hint.textContent = text || "";
    parts.hint.hidden = !text;
  }
  function closeSuggestions() {
    var parts = searchParts();
    parts.list.hidden = true;
    parts.input.setAttribute("aria-expanded", "false");
    parts.input.removeAttribute("aria-activedescendant");
    suggestion.active = -1;
    showHint("");
  }
  function highlight(index) {
    var parts = searchParts(), options = parts.list.querySelectorAll("[role=option]");
    suggestion.active = index;
    Array.prototype.forEach.call(options, function (o, i) { o.setAttribute("aria-selected", String(i === index)); });
    if (index >= 0 && options[index]) {
      parts.input.setAttribute("aria-activedescendant", options[index].id);
      if (options[index].scrollIntoView) options[index].scrollIntoView({ block: "nearest" });
    } else {
      parts.input.removeAttribute("aria-activedescendant");
    }
  }
  function showSuggestions(query, results) {
    var parts = searchParts();
    suggestion.results = results;
    parts.list.textContent = "";
    results.forEach(function (r, i) {
      var where = placeLabel(r) + (r.distance_m != null ? " · " + distanceText(r.distance_m) : "");
      var option = el("li", { id: "search-option-" + i, role: "option", "aria-selected": "false", class: "suggestion", "data-type": r.type }, [
        el("span", { class: "suggestion-name", text: r.name }),
        el("span", { class: "suggestion-meta", text: where })
      ]);
      option.addEventListener("click", function () { choose(r); });
      parts.list.appendChild(option);
    });
    parts.list.hidden = !results.length;
    parts.input.setAttribute("aria-expanded", String(results.length > 0));
    highlight(-1);
    showHint(results.length ? "" : t(query ? "search.none" : "search.hint", { q: query }));
    parts.live.textContent = results.length ? t("search.count", { n: results.length }) : parts.hint.textContent;
  }
  function suggest() {
    var query = searchParts().input.value.trim();
    if (suggestion.abort) suggestion.abort.abort(); // a newer question: the older answer is not wanted
    suggestion.abort = null;
    var asked = ++suggestion.asked;
    if (!query) { showSuggestions("", []); return; }
    var q = new URLSearchParams();
    q.set("q", query);
    if (map) { var c = map.getCenter(); q.set("near", c.lat.toFixed(6) + "," + c.lng.toFixed(6)); }
    q.set("coordsys", MAP_SYS);
    q.set("out_coordsys", MAP_SYS);
    q.set("limit", "8");
    suggestion.abort = window.AbortController ? new AbortController() : null;
    getJSON(API + "/search?" + q.toString(), suggestion.abort ? suggestion.abort.signal : undefined).then(function (res) {
      if (asked === suggestion.asked) showSuggestions(query, res.body.results || []); // (no AbortController: drop stale answers)
    }).catch(function (err) {
      if (asked !== suggestion.asked || (err && err.name === "AbortError")) return;
      showSuggestions(query, []);
      showHint(err && err.http ? err.message : t("error.network"));
    });
  }
  // A station opens its sheet; a street or place becomes the list's place (and the URL's: ?lat&lng&q).
  function choose(r) {
    var input = searchParts().input;
    input.value = r.name;
    closeSuggestions();
    if (r.type === "station" && r.id != null) {
      if (map) map.setView([r.lat, r.lng], Math.max(map.getZoom(), LOCATED_ZOOM));
      openSheet(r.id);
      return;
    }
    state.zoomTo = LOCATED_ZOOM;
    setPlace(r.lat, r.lng, MAP_SYS, r.name);
  }
  function onSearchKey(e) {
    var parts = searchParts(), open = !parts.list.hidden, n = suggestion.results.length;
    if (e.key === "ArrowDown" || e.key === "Down") {
      e.preventDefault();
      if (!open && n) { parts.list.hidden = false; parts.input.setAttribute("aria-expanded", "true"); }
      if (n) highlight((suggestion.active + 1) % n);
    } else if (e.key === "ArrowUp" || e.key === "Up") {
      e.preventDefault();
      if (!open && n) { parts.list.hidden = false; parts.input.setAttribute("aria-expanded", "true"); }
      if (n) highlight(suggestion.active <= 0 ? n - 1 : suggestion.active - 1);
    } else if (e.key === "Enter") {
      e.preventDefault(); // the first suggestion, unless another is highlighted
      if (n && open) choose(suggestion.results[Math.max(0, suggestion.active)]);
      else { clearTimeout(suggestion.timer); suggest(); }
    } else if (e.key === "Escape" || e.key === "Esc") {
      e.stopPropagation(); // not the sheet's Escape
      if (open || !parts.hint.hidden) closeSuggestions(); else parts.input.value = "";
    }
  }
  function initSearch() {
    var parts = searchParts();
    if (state.placeName) parts.input.value = state.placeName;
    parts.input.addEventListener("input", function () {
      clearTimeout(suggestion.timer);
      suggestion.timer = setTimeout(suggest, SEARCH_DELAY_MS);
    });
    parts.input.addEventListener("keydown", onSearchKey);
    parts.input.addEventListener("focus", function () { if (!parts.input.value.trim()) showHint(t("search.hint")); });
    // Tapping a suggestion must not blur the input first (the list would close under the finger).
    parts.list.addEventListener("mousedown", function (e) { e.preventDefault(); });
    document.addEventListener("click", function (e) {
      if (!document.getElementById("search").contains(e.target)) closeSuggestions();
    });
    document.getElementById("search").addEventListener("submit", function (e) { e.preventDefault(); });
  }

  // -- location -------------------------------------------------------------------------
  // The list's place: a position, a tap on the map, or a street or place from the search box (``name``).
  function setPlace(lat, lng, sys, name) {
    var input = document.getElementById("search-input");
    if (!name && state.placeName && input.value === state.placeName) input.value = ""; // no longer "near 人民路"
    state.place = { lat: lat, lng: lng, sys: sys };
    state.placeName = name || null;
    status("");
    return load();
  }
  // No position (not asked yet, or refused): say how to use it, with the button that asks (again).
  function locationProblem(key) {
    status(t(key), { label: t(key === "location.denied" ? "location.retry" : "location.use"), run: locate });
  }
  function locate() {
    if (IN_WECHAT && state.wxReady) {
      window.wx.getLocation({
        type: "gcj02", // converted on the server: coordsys=gcj02
        success: function (r) { state.zoomTo = LOCATED_ZOOM; setPlace(r.latitude, r.longitude, "gcj02"); },
        fail: function () { locationProblem("location.denied"); }
      });
      return;
    }
    if (!navigator.geolocation) { locationProblem("location.denied"); return; }
    status(t("location.asking"));
    navigator.geolocation.getCurrentPosition(function (pos) {
      state.zoomTo = LOCATED_ZOOM;
      setPlace(pos.coords.latitude, pos.coords.longitude, "wgs84");
    }, function () {
      locationProblem("location.denied");
    }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
  }

  // Ask for the position straight away only where that cannot surprise anyone: WeChat
  // (its own prompt), or a browser where permission was already granted. Otherwise the
  // person taps 定位 once (browsers discourage prompts nobody asked for), or taps the map.
  function firstLocate() {
    if ((IN_WECHAT && state.wxReady) || !(navigator.permissions && navigator.permissions.query)) return locate();
    navigator.permissions.query({ name: "geolocation" }).then(function (p) {
      if (p.state === "granted") locate();
      else locationProblem(p.state === "denied" ? "location.denied" : "location.prompt");
    }, locate);
  }

  // -- WeChat ---------------------------------------------------------------------------
  function share(title, desc, link) {
    var data = { title: title, desc: desc, link: link, imgUrl: location.origin + (CONFIG.icon || "") };
    if (window.wx.updateAppMessageShareData) window.wx.updateAppMessageShareData(data);
    if (window.wx.updateTimelineShareData) window.wx.updateTimelineShareData({ title: title, link: link, imgUrl: data.imgUrl });
    if (IN_MINIPROGRAM && window.wx.miniProgram) window.wx.miniProgram.postMessage({ data: { title: title, path: link } });
  }
  function initWeChat() {
    return new Promise(function (resolve) {
      if (!(IN_WECHAT && CONFIG.wechat.enabled)) return resolve(false);
      var script = document.createElement("script");
      script.src = CONFIG.wechat.jssdk;
      script.onerror = function () { resolve(false); };
      script.onload = function () {
        getJSON(API + "/wechat/jssdk-config?url=" + encodeURIComponent(location.href.split("#")[0])).then(function (res) {
          var c = res.body;
          window.wx.config({ debug: false, appId: c.appId, timestamp: c.timestamp, nonceStr: c.nonceStr, signature: c.signature,
            jsApiList: ["getLocation", "openLocation", "updateAppMessageShareData", "updateTimelineShareData"] });
          window.wx.ready(function () { state.wxReady = true; share(document.title, CONFIG.description || "", location.href.split("#")[0]); resolve(true); });
          window.wx.error(function () { resolve(false); });
        }).catch(function () { resolve(false); });
      };
      document.head.appendChild(script);
    });
  }

  // -- start ------------------------------------------------------------------------------
  function start() {
    readUrl();
    readCourier();
    initMap();
    bindCircle();
    initSearch();
    document.getElementById("locate").addEventListener("click", locate);
    document.getElementById("sheet-close").addEventListener("click", closeSheet);
    document.getElementById("sheet").addEventListener("click", function (e) { if (e.target.id === "sheet") closeSheet(); });
    document.addEventListener("keydown", function (e) { if (e.key === "Escape") closeSheet(); });
    document.getElementById("lang").addEventListener("click", function () {
      var q = new URLSearchParams(location.search);
      q.set("lang", CONFIG.lang === "en" ? "zh-CN" : "en");
      location.search = q.toString();
    });
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(function () { /* WeChat web-views may lack it */ });
    var metaReady = getJSON(API + "/meta").then(function (res) { state.meta = res.body; buildChips(); }).catch(function () {
      state.meta = { kinds: [], amenities: [], access: [] };
    });
    Promise.all([metaReady, initWeChat()]).then(function () {
      if (CONFIG.station) {
        openSheet(CONFIG.station);
        return getJSON(API + "/stations/" + CONFIG.station + "?out_coordsys=" + MAP_SYS).then(function (res) {
          if (!state.place) setPlace(res.body.lat, res.body.lng, MAP_SYS);
        }).catch(function () { /* shown by openSheet */ });
      }
      if (state.place) return load();
      loadView(); // the stations in view are the list until there is a place
      firstLocate();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
