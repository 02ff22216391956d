"""Search by name (issue #10), on both stores: characters, pinyin, initials, mixed and full-width
queries on a small hand-made town; ranking; closed stations; bad input; the indexes' plans."""
from __future__ import annotations

import shapely
import pytest
from pypinyin import Style, lazy_pinyin

from app.geo.coordsys import from_wgs84
from app.geo.geodesic import distances_m
from app.search import text
from app.search.service import nearest_on_line
from app.stations.model import Place
from tests.helpers import station
from tests.osm_fixtures import at

# Grid units are 100 m around 27.83 N, 113.15 E (tests.osm_fixtures.at).
RENMIN_ROAD = [at(-5, 0), at(0, 0), at(5, 0)]  # 人民路, west to east along y = 0
SQUARE = at(0, 8)  # 人民广场
METRO = at(3, 8)  # 五一广场 metro station
WEST, EAST = at(-4, 1), at(4, 1)  # two toilets on 人民路, 800 m apart


def _stations():
    return [
        station("west", *WEST, name="人民路西公厕", kind="toilet"),
        station("east", *EAST, name="人民路东公厕", kind="toilet"),
        station("changsha", *at(10, 0), name="长沙路驿站", kind="rest_station"),
        station("chongqing", *at(20, 0), name="重庆路饮水点", kind="water_point"),
        station("closed", *at(0, 7), name="人民广场公厕", status="closed"),
        station("removed", *at(1, 7), name="人民公园公厕", status="removed"),
        station("water", *at(6, 6), name="100%纯净水", kind="water_point"),
    ]


def _with(st, **changes):
    """A station input with other address/operator (its search key made again from them)."""
    from dataclasses import fields
    from app.stations.model import StationInput
    values = {f.name: getattr(st, f.name) for f in fields(StationInput)}
    values.update(changes, search_key=None)
    return StationInput(**values)


def _places():
    line = shapely.LineString([(lng, lat) for lat, lng in RENMIN_ROAD])
    return [
        Place("street/人民路", "street", "street", "人民路", *RENMIN_ROAD[1], shapely.to_wkb(line)),
        Place("way/2", "place", "square", "人民广场", *SQUARE),
        Place("node/3", "place", "metro_station", "五一广场", *METRO),
    ]


@pytest.fixture
def town(store):
    stations = _stations()
    stations[2] = _with(stations[2], address="人民路12号")
    stations[3] = _with(stations[3], operator="人民水务")
    store.upsert(stations)
    store.replace_places(_places())
    return store


def _search(client, q, **params):
    response = client.get("/api/v1/search", query_string={"q": q, **params})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _names(answer):
    return [r["name"] for r in answer["results"]]


# -- normalisation (pure) ----------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("ｒｍｌ", "rml"), ("ＲＭＬ", "rml"), ("１２号", "12号"), ("ren min lu", "renminlu"), ("rénmínlù", "renminlu"),
    ("Lǜ", "lv"), ("lu:", "lv"), ("lü", "lv"), ("人民 路", "人民路"), ("\u3000人民\t", "人民"),
])
def test_normalise(raw, expected):
    assert text.normalise(raw) == expected


def test_polyphonic_characters_read_as_the_phrase_data_says():
    assert [u.reading for u in text.units("长沙路")] == ["chang", "sha", "lu"]
    assert [u.reading for u in text.units("重庆路")] == ["chong", "qing", "lu"]
    assert [u.reading for u in text.units("市长")] == ["shi", "zhang"]


def test_units_read_run_by_run_as_pypinyin_reads_the_whole_text():
    # units() reads each run of Chinese characters apart (and caches it); the oracle reads the
    # whole text in one pypinyin call: one item per Chinese character, one per other run.
    def whole_text(norm: str) -> list[tuple[str, str]]:
        out, i = [], 0
        for item in lazy_pinyin(norm, style=Style.NORMAL, errors="default", v_to_u=False):
            if text._is_han(norm[i]):
                out.append((norm[i], item))
                i += 1
            else:
                assert norm[i:i + len(item)] == item
                out.extend((c, c) for c in item)
                i += len(item)
        return out

    for raw in ["人民东路128号", "长沙路3栋A座", "KFC重庆路店", "乐亭县(人民路)", "银行街12号—行人", "步行街", "12",
                "A座长乐路", "市长🙂重庆", "ｒｍｌ长沙", "", "行长行"]:
        norm = text.normalise(raw)
        assert [(u.char, u.reading) for u in text.units(norm)] == whole_text(norm), raw


def test_a_key_reads_back_as_the_units_of_its_fields():
    # key_units() reads units from the stored key instead of running pypinyin again: where it
    # answers, it must be exactly units() of the field; it may only decline (None).
    fields = [("长沙路驿站", "重庆路12号", "e换电"), (None, "人民东路128号", ""), ("KFC重庆路店", None, "铁塔能源"),
              ("乐亭县(人民路)", "〇号线", "市长热线"), ("Lǜ 站", "ｒｍｌ长沙", "行长行"), ("9号9栋", "99", "a9b")]
    declined = 0
    for texts in fields:
        read = text.key_units(text.search_key(*texts), texts)
        assert len(read) == len(texts)
        for raw, units in zip(texts, read):
            norm = text.normalise(raw) if raw else ""
            if units is None:
                declined += 1
            else:
                assert units == (text.units(norm) if norm else ()), raw
    assert declined == 1  # only 乐亭县(人民路): its brackets read as themselves
    # A key of another shape (an older release's) is declined, never misread.
    assert text.key_units("renmin 9ren9min", ("人民",)) == [None]


def test_like_wildcards_are_escaped():
    assert text.like_escape("a%b_c\\d") == "a\\%b\\_c\\\\d"


def test_every_pattern_is_long_enough_for_a_trigram_index():
    for q in ("人", "人民", "人民路", "renmin", "rm", "lu", "rml", "人民g", "r民", "%", "😀"):
        pats = text.patterns(text.normalise(q))
        assert pats and all(len(p) >= 3 for p in pats), (q, pats)
    assert text.patterns("r") == () and text.patterns("7") == ()


def test_every_match_holds_a_pattern_in_its_key():
    # Brute force over names with polyphonic characters (长 cháng/zhǎng, 重 chóng/zhòng, 乐 lào
    # in 乐亭, 行 háng/xíng): every query made of a name's characters, readings and initials
    # that matches holds one of its patterns in the key (and, matched at the start, one of its
    # prefix patterns after a space).
    names = ["长沙路驿站", "市长热线站", "重庆路饮水点", "重要物资点", "乐亭县人民路", "银行街公厕", "步行街A座"]
    for name in names:
        key = " " + text.search_key(name)
        us = text.units(text.normalise(name))
        for start in range(len(us)):
            for end in range(start + 1, min(start + 4, len(us)) + 1):
                chars = "".join(u.char for u in us[start:end])
                for cut in range(1, end - start):
                    for tail in ({"".join(u.reading for u in us[start + cut:end]),
                                  "".join(u.reading[0] for u in us[start + cut:end])}):
                        q = chars[:cut] + tail
                        found = text.match(q, name)
                        assert found is not None, (name, q)
                        assert any(text.key_holds(key, p) for p in text.patterns(q)), (name, q, text.patterns(q))
                        if found.tier <= text.PREFIX:
                            assert any(text.key_holds(key, p) for p in text.prefix_patterns(q)), (name, q)


def test_characters_then_letters_are_read():
    # The characters (chars form) and their readings then the letter (pinyin form), both held.
    renmin = text.encode("人民")
    assert text.patterns("人民d") == (f"{renmin}\trenmind",)
    assert text.prefix_patterns("人民d") == (f" {renmin}\t renmind",)
    assert set(text.patterns("长j")) == {f"{text.encode('长')}\tchangj", f"{text.encode('长')}\tzhangj"}  # either reading
    assert text.patterns("饿d") == (text.encode("饿"),)  # "ed" is too short for a trigram index
    assert text.patterns("人民d路") == (text.encode("人民"),)  # only characters-then-letters is read


def test_phrase_only_readings_are_those_of_pypinyins_data():
    # The readings pypinyin's phrases give a character beyond its own list, recomputed.
    from pypinyin import Style, lazy_pinyin, pinyin
    from pypinyin.constants import PHRASES_DICT

    extra: dict[str, set[str]] = {}
    for phrase in PHRASES_DICT:
        read = lazy_pinyin(phrase, style=Style.NORMAL, v_to_u=False)
        if len(read) != len(phrase):
            continue
        for char, reading in zip(phrase, read):
            if reading not in pinyin(char, style=Style.NORMAL, heteronym=True, v_to_u=False)[0]:
                extra.setdefault(char, set()).add(reading)
    assert extra == {c: set(r) for c, r in text.PHRASE_ONLY_READINGS.items()}


# -- what is found -------------------------------------------------------------------


def test_characters_find_streets_squares_and_stations(client, town):
    answer = _search(client, "人民")
    names = _names(answer)
    assert answer["query"] == "人民"
    assert {"人民路", "人民广场", "人民路西公厕", "人民路东公厕"} <= set(names)
    # the station at 人民路12号 matched by its address, the water point by its operator
    by_name = {r["name"]: r for r in answer["results"]}
    assert by_name["长沙路驿站"]["matched"] == "address"
    assert by_name["重庆路饮水点"]["matched"] == "operator"
    assert by_name["人民路"]["type"] == "street" and by_name["人民路"]["id"] is None
    assert by_name["人民广场"]["kind"] == "square"


def test_closed_and_removed_stations_are_not_suggested(client, town):
    names = _names(_search(client, "人民"))
    assert "人民广场公厕" not in names and "人民公园公厕" not in names
    assert _search(client, "人民公园")["results"] == []


@pytest.mark.parametrize("q", ["renminlu", "ren min lu", "rénmínlù", "RenMinLu", "rml", "ｒｍｌ", "人民路", "人ml"])
def test_pinyin_initials_and_full_width_find_the_street_first(client, town, q):
    results = _search(client, q)["results"]
    assert results[0]["name"] == "人民路" and results[0]["type"] == "street"
    assert results[0]["match"] in ("exact", "pinyin", "initials")
    assert {"人民路西公厕", "人民路东公厕"} <= set(r["name"] for r in results)


def test_match_kinds(client, town):
    first = {q: _search(client, q)["results"][0] for q in ("renminlu", "rml", "人民路", "人民路西", "路西")}
    assert first["renminlu"]["match"] == "pinyin"
    assert first["rml"]["match"] == "initials"
    assert first["人民路"]["match"] == "exact"
    assert first["人民路西"]["match"] == "prefix"
    assert (first["路西"]["name"], first["路西"]["match"]) == ("人民路西公厕", "substring")


def test_mixed_characters_and_pinyin(client, town):
    results = _search(client, "人民g")["results"]
    assert [r["name"] for r in results] == ["人民广场"]
    assert results[0]["match"] == "pinyin"
    assert _names(_search(client, "人民gc")) == ["人民广场"]


def test_polyphonic_names_match_their_own_reading(client, town):
    assert _names(_search(client, "changshalu")) == ["长沙路驿站"]
    assert _names(_search(client, "csl")) == ["长沙路驿站"]
    assert _names(_search(client, "zsl"))  == []  # 长 is cháng here, not zhǎng
    assert _names(_search(client, "chongqing")) == ["重庆路饮水点"]
    assert _names(_search(client, "cql")) == ["重庆路饮水点"]
    assert _names(_search(client, "zql")) == []


def test_two_letter_syllable_and_initials(client, town):
    assert "人民路" in _names(_search(client, "rm"))
    assert "五一广场" in _names(_search(client, "wy"))
    assert "长沙路驿站" in _names(_search(client, "ch"))


def test_places_by_kind(client, town):
    results = _search(client, "wuyiguangchang")["results"]
    assert [(r["name"], r["type"], r["kind"]) for r in results] == [("五一广场", "place", "metro_station")]


def test_full_width_digits_find_an_address(client, town):
    results = _search(client, "１２号")["results"]
    assert [(r["name"], r["matched"]) for r in results] == [("长沙路驿站", "address")]


def test_typo_tolerant_fallback_only_when_nothing_else_matched(client, town):
    results = _search(client, "renminlv")["results"]  # v for u: a typo
    assert results and all(r["match"] == "fuzzy" for r in results)
    assert "人民路" in _names({"results": results})
    assert all(r["match"] != "fuzzy" for r in _search(client, "renminlu")["results"])


# -- ranking and points ----------------------------------------------------------------


def test_ranked_by_distance_within_a_tier(client, town):
    near_west = "%f,%f" % at(-4, 2)
    near_east = "%f,%f" % at(4, 2)
    west = [n for n in _names(_search(client, "公厕", near=near_west)) if n.startswith("人民路")]
    east = [n for n in _names(_search(client, "公厕", near=near_east)) if n.startswith("人民路")]
    assert west == ["人民路西公厕", "人民路东公厕"]
    assert east == ["人民路东公厕", "人民路西公厕"]
    distances = [r["distance_m"] for r in _search(client, "公厕", near=near_west)["results"]]
    assert distances == sorted(distances)


def test_exact_and_prefix_before_distance(client, town):
    # From far east, 人民路 (a prefix of nothing; the whole name) still comes before nearer stations.
    results = _search(client, "人民路", near="%f,%f" % at(20, 1))["results"]
    assert results[0]["name"] == "人民路" and results[0]["match"] == "exact"
    assert [r["match"] for r in results[1:3]] == ["prefix", "prefix"]


def test_a_far_prefix_match_is_not_lost_behind_nearer_substring_matches(client, store):
    # 120 stations with 人民 inside their names crowd the point; 人民路公厕 starts with it, 3 km away.
    from app.search.service import first_round

    assert 120 > 4 * first_round(8)  # more than the first two rounds' candidates
    crowd = [station(f"s{i}", *at(i % 12, i // 12), name=f"解放路人民{i}号") for i in range(120)]
    store.upsert(crowd + [station("far", *at(30, 0), name="人民路公厕"), station("farther", *at(60, 0), name="人民")])
    for q in ("人民", "renmin", "rm"):
        results = _search(client, q, near="%f,%f" % at(0, 0))["results"]
        assert [(r["name"], r["match"]) for r in results[:2]] == [
            ("人民", "exact" if q == "人民" else "pinyin" if q == "renmin" else "initials"),
            ("人民路公厕", "prefix" if q == "人民" else "pinyin" if q == "renmin" else "initials")], q


def test_a_station_closed_by_staff_is_not_suggested_until_it_reopens(client, town, ops):
    from datetime import timedelta

    from app.dbtime import utcnow

    west = _search(client, "人民路西公厕")["results"][0]
    assert (west["name"], west["type"]) == ("人民路西公厕", "station")
    ops.store.set_closure(west["id"], "管道维修", utcnow() + timedelta(days=2))
    assert "人民路西公厕" not in _names(_search(client, "人民路", near="%f,%f" % WEST))
    assert "人民路东公厕" in _names(_search(client, "人民路", near="%f,%f" % WEST))
    ops.store.set_closure(west["id"], "管道维修", utcnow() - timedelta(minutes=1))  # its closure is over
    assert _names(_search(client, "人民路", near="%f,%f" % WEST))[:2] == ["人民路", "人民路西公厕"]


def test_a_round_left_short_by_false_candidates_asks_for_more(client, store):
    # 40 nearer stations start with a character that shares 人's 4-character code: their keys
    # hold 人民's pattern but the check rejects them all, so the first round (16 candidates)
    # finds nothing and the round is asked again with more until the real match 4 km away.
    twin = chr(ord("人") + 2 * 67_600)
    assert twin != "人" and text.code(twin) == text.code("人")
    store.upsert([station(f"d{i}", *at(i % 8, i // 8), name=f"{twin}民路{i}号") for i in range(40)]
                 + [station("real", *at(40, 0), name="人民路公厕")])
    results = _search(client, "人民", near="%f,%f" % at(0, 0))["results"]
    assert [(r["name"], r["match"]) for r in results] == [("人民路公厕", "prefix")]


def test_prefix_patterns_start_a_form():
    for name in ("人民路西公厕", "长沙路驿站", "West street"):
        key = " " + text.search_key(name)
        for q in ("人民", "人民l", "人m", "renmin", "rml", "rm", "csl", "chang", "ch", "west", "ws"):
            query = text.normalise(q)
            found = text.match(query, name)
            if found is not None and found.tier <= text.PREFIX:
                assert any(text.key_holds(key, p) for p in text.prefix_patterns(query)), (name, q)
    assert text.prefix_patterns("r民") == () and text.prefix_patterns("12号") == ()


def test_a_street_is_answered_at_its_point_nearest_near(client, town):
    near = at(3, 4)
    result = _search(client, "人民路", near="%f,%f" % near)["results"][0]
    assert result["lat"] == pytest.approx(RENMIN_ROAD[0][0], abs=1e-7)  # on the line (y = 0)
    assert result["lng"] == pytest.approx(at(3, 0)[1], abs=1e-6)  # straight south of near
    expected = distances_m(near[0], near[1], [result["lat"]], [result["lng"]])[0]
    assert result["distance_m"] == pytest.approx(expected, abs=0.2)
    assert result["distance_m"] == pytest.approx(400, abs=1)
    middle = _search(client, "人民路")["results"][0]  # without near: its middle
    assert (middle["lat"], middle["lng"], middle["distance_m"]) == (round(at(0, 0)[0], 7), round(at(0, 0)[1], 7), None)


def test_nearest_on_line_beyond_its_end():
    line = shapely.LineString([(lng, lat) for lat, lng in RENMIN_ROAD])
    lat, lng = nearest_on_line(line, at(9, 3))
    assert (lat, lng) == pytest.approx(RENMIN_ROAD[-1])


def test_near_and_answer_in_other_coordinate_systems(client, town):
    gcj_near = from_wgs84(*at(-4, 2), "gcj02")
    wgs = _search(client, "人民路西", near="%f,%f" % at(-4, 2))["results"][0]
    gcj = _search(client, "人民路西", near="%.9f,%.9f" % gcj_near, coordsys="gcj02")["results"][0]
    assert gcj["distance_m"] == pytest.approx(wgs["distance_m"], abs=0.5)
    assert (gcj["lat"], gcj["lng"]) == pytest.approx(from_wgs84(*WEST, "gcj02"), abs=1e-6)
    out = _search(client, "人民路西", near="%f,%f" % at(-4, 2), out_coordsys="bd09")["results"][0]
    assert (out["lat"], out["lng"]) == pytest.approx(from_wgs84(*WEST, "bd09"), abs=1e-6)


def test_limit(client, town):
    assert len(_search(client, "人民", limit=2)["results"]) == 2
    assert len(_search(client, "人民")["results"]) <= 8


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("params, field", [
    ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "\u3000\u3000"}, "q"), ({}, "q"),
    ({"q": "人" * 1000}, "q"), ({"q": "a" * 65}, "q"), ({"q": "人民", "near": "27.8"}, "near"),
    ({"q": "人民", "near": "91,113"}, "near"), ({"q": "人民", "near": "nan,113"}, "near"),
    ({"q": "人民", "near": "２７,113"}, "near"), ({"q": "人民", "limit": "0"}, "limit"),
    ({"q": "人民", "limit": "21"}, "limit"), ({"q": "人民", "limit": "x"}, "limit"),
])
def test_bad_input_is_a_400_naming_the_parameter(client, town, params, field):
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


@pytest.mark.parametrize("q", ["r", "R", "ｒ", "7", "_", "\\", "'", '"', "😀", "'; DROP TABLE station; --",
                               "人民road", "%%", "__", "\\\\", "a_b", "Ω人"])
def test_odd_input_is_a_sensible_empty_or_short_list(client, town, q):
    answer = _search(client, q)
    assert isinstance(answer["results"], list)
    assert "100%纯净水" not in _names(answer) or "%" in q


def test_wildcards_match_only_themselves(client, town):
    assert _names(_search(client, "%")) == ["100%纯净水"]
    assert _names(_search(client, "0%纯")) == ["100%纯净水"]
    assert _search(client, "_")["results"] == []
    assert _search(client, "r")["results"] == []


# -- the store: the same candidates on both, always through the index ----------------------


def test_candidates_come_from_the_search_key(town):
    found = town.search_candidates(text.patterns("人民"), None, 50)
    assert {s.name for s in found.stations} == {"人民路西公厕", "人民路东公厕", "长沙路驿站", "重庆路饮水点"}
    assert {p.name for p in found.places} == {"人民路", "人民广场"}


def test_a_renamed_station_is_found_by_its_new_name(town):
    renamed = _with(_stations()[0], name="解放路公厕")
    town.upsert([renamed])
    assert "解放路公厕" in {s.name for s in town.search_candidates(text.patterns("jfl"), None, 50).stations}
    assert "人民路西公厕" not in {s.name for s in town.search_candidates(text.patterns("人民"), None, 50).stations}


QUERY_SHAPES = ["人", "人民", "人民路", "renmin", "renminlu", "rm", "rml", "lu", "人民g", "r民"]


@pytest.mark.parametrize("q", QUERY_SHAPES)
@pytest.mark.parametrize("prefix", [False, True])
def test_every_query_shape_uses_the_index(connection, town, backend, q, prefix):
    pats = (text.prefix_patterns if prefix else text.patterns)(text.normalise(q))
    if not pats:
        assert prefix and q == "r民"  # no form need start with a pattern: only the substring round
        return
    cursor = connection.connection.driver_connection.cursor()
    for analysed in (False, True):  # all of a pattern's trigrams, or its rarest
        if analysed:
            town.analyze_search()
        docs = town._trigram_docs(cursor)
        assert bool(docs) == analysed
        if backend == "postgis":
            from app.stations.postgis import search_sql
            sql, params = search_sql(pats, (27.83, 113.15), 200, docs)
            cursor.execute("SET LOCAL enable_seqscan = off")  # a plan that cannot use the index would still scan
            for table in ("station", "place"):
                plan = "\n".join(r[0] for r in cursor.execute("EXPLAIN " + sql[table], params, prepare=False))
                assert f"Bitmap Index Scan on ix_{table}_search_key" in plan, plan
                assert "Seq Scan" not in plan, plan
        else:
            from app.stations.sqlite import search_sql
            sql, params = search_sql(pats, (27.83, 113.15), 200, docs)
            for table in ("station", "place"):
                plan = "\n".join(r[3] for r in cursor.execute("EXPLAIN QUERY PLAN " + sql[table], params))
                assert f"SCAN {table}_fts VIRTUAL TABLE INDEX 0:M" in plan, plan
                assert "USING INTEGER PRIMARY KEY" in plan, plan
                assert f"SCAN {table} " not in plan + " " and "SCAN s " not in plan + " ", plan


# -- places from the OSM extract, through the network import ------------------------------


@pytest.fixture(scope="session")
def search_town_pbf(tmp_path_factory):
    from tests.osm_fixtures import write_search_town

    return write_search_town(tmp_path_factory.mktemp("osm") / "search_town.osm.pbf")


@pytest.fixture
def imported(store, search_town_pbf):
    from app.network.service import import_network

    report = import_network(store, search_town_pbf)
    assert report.places_found == 7  # 3 streets, the square, the metro station, the hospital, the neighbourhood
    return store


def test_the_network_import_collects_places(client, imported):
    found = {(r["name"], r["type"], r["kind"]) for r in _search(client, "人民")["results"]}
    assert found == {("人民路", "street", "street"), ("人民广场", "place", "square"),
                     ("人民新村", "place", "neighbourhood"), ("人民路公厕", "station", "toilet")}
    assert [(r["name"], r["kind"]) for r in _search(client, "wygc")["results"]] == [("五一广场", "metro_station")]
    assert [(r["name"], r["kind"]) for r in _search(client, "湘雅")["results"]] == [("湘雅医院", "hospital")]
    assert _search(client, "不是地标")["results"] == []  # a named bench is no landmark
    square = _search(client, "人民广场")["results"][0]
    assert (square["lat"], square["lng"]) == pytest.approx(at(0, 8), abs=1e-6)  # the middle of its outline


def test_a_street_of_several_ways_is_one_line(client, imported):
    streets = [r for r in _search(client, "renminlu", near="%f,%f" % at(-4, 3))["results"] if r["type"] == "street"]
    assert len(streets) == 1
    assert (streets[0]["lat"], streets[0]["lng"]) == pytest.approx(at(-4, 0), abs=1e-6)  # on way 500
    east = _search(client, "renminlu", near="%f,%f" % at(4, -2))["results"][0]
    assert (east["lat"], east["lng"]) == pytest.approx(at(4, 0), abs=1e-6)  # on way 501
    assert east["distance_m"] == pytest.approx(200, abs=0.5)


def test_a_new_import_replaces_the_places(client, imported, search_town_pbf, river_town_pbf):
    from app.network.service import import_network

    import_network(imported, river_town_pbf, force=True)
    assert _search(client, "人民广场")["results"] == []
    assert [r["name"] for r in _search(client, "west street")["results"]][:1] == ["West street"]


# -- many stations: the widening searches find exactly the nearest matches ----------------------

CROWD_CENTRE = (27.83, 113.15)


def _crowd(size=3000, seed=7, centre=CROWD_CENTRE):
    """Stations ±0.2° around the centre: half on a 人民 street (a common pattern), one in 60 on a
    解放 street (a rare one), and closed ones among them that must never be candidates."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(size):
        word = "解放" if i % 60 == 0 else "人民" if i % 2 else rng.choice(["长沙", "芙蓉", "天元", "建设"])
        out.append(station(f"c{i}", centre[0] + rng.uniform(-0.2, 0.2), centre[1] + rng.uniform(-0.2, 0.2),
                           name=f"{word}路{rng.choice('东西南北')}公厕", status="closed" if i % 7 == 0 else "active"))
    return out


def _load(store, crowd):
    """Store the crowd and give the store its statistics (it chooses its plan by them)."""
    store.upsert(crowd)
    store.analyze_search()


def _expected_nearest(stations, pats, near, n):
    """By brute force: the n active stations nearest ``near`` (near_order's measure) whose key holds a pattern."""
    from app.stations.store import near_metric

    metric = near_metric(near)
    found = [s for s in stations if s.status == "active" and any(p in s.search_key for p in pats)]
    return [s.source_id for s in sorted(found, key=lambda s: metric(s.lat, s.lng))[:n]]


@pytest.mark.parametrize("q, near", [
    ("人民", CROWD_CENTRE), ("人民", (27.99, 113.33)), ("rm", (27.70, 113.05)), ("人", (27.83, 113.20)),
    ("人民", (28.6, 114.0)),  # far outside: the widening gives way to the text index
    ("解放", CROWD_CENTRE), ("jfl", (27.95, 113.0)),
])
def test_candidates_are_exactly_the_nearest_matches(store, q, near):
    crowd = _crowd()
    _load(store, crowd)
    pats = text.patterns(text.normalise(q))
    found = store.search_candidates(pats, near, 50).stations
    assert [s.source_id for s in found] == _expected_nearest(crowd, pats, near, 50)


@pytest.mark.parametrize("q", ["人民", "解放"])
def test_far_north_where_a_degree_of_longitude_is_short(store, q):
    # At 60° N planar degrees (PostGIS's KNN) and the ranking's measure disagree the most.
    centre = (60.17, 24.94)
    crowd = _crowd(centre=centre)
    _load(store, crowd)
    pats = text.patterns(text.normalise(q))
    for near in (centre, (60.3, 25.1)):
        found = store.search_candidates(pats, near, 50).stations
        assert [s.source_id for s in found] == _expected_nearest(crowd, pats, near, 50)


def test_the_search_cells_are_kept_in_step_with_the_stations(connection, store):
    # station_search holds exactly the active stations, at the cell search_cell gives, through
    # inserts, renames, moves, closing, reopening and deletes (kept by triggers, on both stores).
    from app.stations.store import search_cell

    def expected():
        rows = connection.exec_driver_sql("SELECT id, lat, lng, search_key FROM station WHERE status = 'active'")
        return {(search_cell(lat, lng), i, lat, lng, " " + key) for i, lat, lng, key in rows}

    def held():
        return set(connection.exec_driver_sql("SELECT cell, id, lat, lng, search_key FROM station_search"))

    crowd = _crowd(size=300)
    store.upsert(crowd)
    assert held() == expected() and len(held()) == sum(s.status == "active" for s in crowd)
    store.upsert([_with(crowd[1], name="解放路新公厕"), _with(crowd[3], lat=27.9, lng=113.3),
                  _with(crowd[5], status="closed"), _with(crowd[7], status="active"),
                  _with(crowd[9], lat=-33.8688, lng=-151.2093)])  # south and west of 0°
    connection.exec_driver_sql("DELETE FROM station WHERE source_id IN ('c11', 'c12')")
    assert held() == expected()


def test_a_pattern_asks_for_its_rarest_trigrams():
    from app.stations.sqlite import fts_plan
    from app.stations.store import rare_trigrams, trigrams

    assert trigrams(" renmin") == ["ren", "enm", "nmi", "min"]  # a form's leading space left out
    docs = {"": 20_000, "ren": 500, "enm": 40, "nmi": 40, "min": 1100, "9r9": 5000, "r9m": 300, "9m9": 800}
    # the two rarest, then others while short (a 20th of the keys: 1,000, or 4x the rarest)
    assert rare_trigrams("renmin", docs) == ["enm", "nmi", "ren"]
    assert rare_trigrams("9r9m9", docs) == ["r9m", "9m9"]  # 9r9: 5,000, too long
    assert rare_trigrams("abcd", docs) == ["abc", "bcd"]  # unseen trigrams: the rarest of all
    assert rare_trigrams("renmin", {}) == ["ren", "enm", "nmi", "min"]  # never analysed: all
    assert fts_plan(["renmin", "9r9m"], docs) == '("enm" AND "nmi" AND "ren") OR ("r9m" AND "9r9")'
    # all of those overlapping the rarest (one syllable's letters, in the same keys): the rarest
    # window apart from it as well, however common (at 1M: 和平 keys 25,000; with gsh, 1,852)
    heping = {"": 1_000_000, "hep": 25_000, "epi": 25_000, "pin": 25_000, "ing": 200_000, "ngs": 150_000,
              "gsh": 105_000, "sha": 300_000, "han": 400_000, "ang": 600_000}
    assert rare_trigrams("hepingshang", heping) == ["epi", "hep", "pin", "gsh"]


def test_parts_all_patterns_share_are_asked_for_once_and_the_rest_by_the_letter_typed():
    from app.stations.sqlite import fts_plan
    from app.stations.store import index_plan

    # 长d: 长 (encoded) and its readings then d, one pattern per reading. 长 is asked for by
    # its rarest trigrams once; of "changd"/"zhangd" only the window holding the d ("ngd"),
    # since "cha", "han"... are in every key holding 长 anyway.
    chang = text.encode("长")
    docs = {"": 20_000, chang[:3]: 300, chang[1:]: 200, "ngd": 900, "cha": 50, "zha": 40}
    pats = text.patterns("长d")
    assert index_plan(pats, docs) == ([chang[1:], chang[:3]], [["ngd"]])
    assert fts_plan(pats, docs) == f'("{chang[1:]}" AND "{chang[:3]}") AND (("ngd"))'
    assert index_plan(pats[:1], docs) == ([chang[1:], chang[:3]], [["ngd"]])  # one reading: the same
    # patterns of one part: each its rarest trigrams, any of them
    assert index_plan(["renmin", "9r9m"], {"": 9, "enm": 1}) == ([], [["min", "nmi", "ren"], ["9r9", "r9m"]])
    # a pattern needing nothing beyond the shared part: the shared part alone
    assert index_plan([f"{chang}\tabc", chang], docs) == ([chang[1:], chang[:3]], [])
    # different first parts: each pattern its own group, with its tail
    assert index_plan(["renmin\tabcd", "9r9m"], {"": 9, "enm": 1}) == ([], [["min", "nmi", "ren", "bcd"], ["9r9", "r9m"]])


def test_statistics_choose_the_plan_never_the_answer(client, town):
    # Analysed, then a station with trigrams the statistics never saw: it is still found, and
    # a station renamed away from a common pattern is no longer.
    town.analyze_search()
    town.upsert([station("new", *at(2, 2), name="魑魅魍魉驿站"), _with(_stations()[0], name="解放路公厕")])
    assert _names(_search(client, "魑魅")) == ["魑魅魍魉驿站"]
    assert _names(_search(client, "chimei")) == ["魑魅魍魉驿站"]
    assert "人民路西公厕" not in _names(_search(client, "人民", near="%f,%f" % WEST))


def test_with_a_sample_the_trigrams_asked_for_are_those_rare_together():
    from app.stations.store import KeySample, TrigramDocs, rare_trigrams

    # 10 sampled keys hold 天元 (tia, ian, any, nyu, yua) and 2 of them 天元中: counted alone,
    # the windows of tianyuan are the rarest, but every key holding one holds them all; nzh,
    # commoner, leaves 2 of the 10.
    keys = ["tianyuanzhong"] * 2 + ["tianyuandong"] * 8 + ["zhongshan"] * 30
    counts = {"": 60, "nyu": 10, "tia": 11, "ian": 11, "any": 11, "yua": 11, "nzh": 22, "anz": 25, "uan": 30,
              "zho": 32, "hon": 40, "ong": 45}
    docs = TrigramDocs(counts, KeySample(keys))
    assert rare_trigrams("tianyuanzhong", docs) == ["nyu", "nzh"]  # 2 keys left: too few to go on
    # without a sample, or with too few sampled keys to judge, the counts decide
    assert rare_trigrams("tianyuanzhong", counts)[:2] == ["nyu", "any"]
    assert rare_trigrams("tianyuanzhong", TrigramDocs(counts, KeySample(keys[:3])))[:2] == ["nyu", "any"]


def test_common_patterns_widen_boxes_and_rare_ones_ask_the_text_index():
    from app.stations.store import text_index_first

    assert not text_index_first(1500, 3000, 50)  # 人民: half the stations
    assert text_index_first(50, 3000, 50)  # 解放: one in 60
    assert text_index_first(387, 3000, 50) and not text_index_first(388, 3000, 50)  # 387² < 150,000 ≤ 388²
    # when the text index gives more rows than match (its trigrams without their order), it costs more
    assert text_index_first(100, 3000, 50) and not text_index_first(100, 3000, 50, read=1500)
    # where a box's rows are cheaper to read than the text index's, boxes win sooner
    assert text_index_first(300, 3000, 50) and not text_index_first(300, 3000, 50, box_cost=0.5)


def test_a_key_sample_counts_the_keys_holding_a_pattern():
    from app.stations.store import KeySample

    sample = KeySample(["2z5e4c4b renmin 9r9m", "4c4b2z5e minren 9m9r", "renmin"])
    assert sample.size == 3
    assert sample.holding_any([" renmin"], stop=9) == 2  # a form's start, the key's first form too
    assert sample.holding_any(["renmin", "minren"], stop=9) == 3
    assert sample.holding_any(["renmin", "minren"], stop=2) == 2  # counted up to where it matters
    assert sample.holding_any(["2z5e"], stop=9) == 2 and sample.holding_any(["zzz"], stop=9) == 0
    assert sample.holding_plan([], [["9r9", "r9m"]], stop=9) == 1
    assert sample.holding_plan([], [["9m9", "ren"]], stop=9) == 1
    assert sample.holding_plan([], [["9r9", "r9m"], ["9m9", "ren"]], stop=9) == 2
    assert sample.holding_plan(["ren"], [], stop=9) == 3
    assert sample.holding_plan(["ren", "min"], [["9r9"], ["9m9"]], stop=9) == 2  # not the bare "renmin"
    assert sample.holding_plan(["2z5"], [["9m9"]], stop=9) == 1
    # a pattern of parts: all of them
    assert sample.holding_any(["2z5e\trenmin"], stop=9) == 1 and sample.holding_any(["2z5e\tzzz"], stop=9) == 0
    assert KeySample([]).holding_any(["ren"], stop=9) == 0


def test_the_widening_queries_use_the_indexes(connection, store, backend):
    from app.stations.store import reach_box

    crowd = _crowd()
    store.upsert(crowd)
    pats = text.patterns(text.normalise("人民"))
    cursor = connection.connection.driver_connection.cursor()
    if backend == "postgis":
        from app.stations.postgis import box_search_sql
        cursor.execute("ANALYZE station_search")
        cursor.execute("SET LOCAL enable_seqscan = off")
        for pattern in (pats, text.patterns("jfl")):
            for reach in (0.01, 0.1):
                sql, params = box_search_sql(pattern, CROWD_CENTRE, reach_box(CROWD_CENTRE, reach), 50)
                plan = "\n".join(r[0] for r in cursor.execute("EXPLAIN " + sql, params, prepare=False))
                # the box's cells by the primary key, each key tested (an index-only scan once
                # VACUUM has marked the pages all-visible, which a test's transaction cannot)
                assert "station_search_pkey" in plan and "cell = ANY" in plan, plan
                assert "ix_station_search_key" not in plan and "Seq Scan" not in plan, plan
    else:
        from app.stations.sqlite import box_search_sql
        for reach in (0.01, 0.1):  # 3 and 21 rows of cells
            sql, params = box_search_sql(pats, CROWD_CENTRE, reach_box(CROWD_CENTRE, reach), 50)
            plan = "\n".join(r[3] for r in cursor.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "SEARCH station_search USING PRIMARY KEY (cell>? AND cell<?)" in plan, plan
            assert "SCAN station_search" not in plan, plan
    assert store._text_index_first(cursor, pats, 50)  # never analysed: no estimate, the text index
    store.analyze_search()
    assert not store._text_index_first(cursor, pats, 50)  # the trigram counts say 人民 is common
    assert store._text_index_first(cursor, text.patterns("jfl"), 50)
