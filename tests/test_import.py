"""Importing CSV and GeoJSON through the CLI, on both stores."""
import json

import pytest

from app.geo.coordsys import wgs84_to_gcj02, from_wgs84
from app.geo.geodesic import distance_m
from app.stations.importing import parse_file

HEADER = "source_id,name,kind,lat,lng,amenities,opening_hours,address,operator,access"


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def run_import(cli, path, *args):
    return cli.invoke(args=["stations", "import", path, *args])


def test_csv_with_bom_crlf_and_quoted_commas(cli, store, tmp_path):
    text = "\ufeff" + HEADER + "\r\n" + (
        '1,"建宁驿站, 红旗路",toilet,27.83,113.15,"hot_water;baby_change=no",06:00-22:00,"株洲市, 芦淞区",市城管局,public\r\n'
        '2,换电柜,battery_swap,27.84,113.16,,24/7,,,customers\r\n'
    )
    result = run_import(cli, write(tmp_path, "s.csv", text), "--source", "city")
    assert result.exit_code == 0, result.output
    assert "2 new" in result.output
    assert store.count() == 2
    (first,) = [s for s in store.within(_world(), _all(), 10)[0] if s.source_id == "1"]
    assert first.name == "建宁驿站, 红旗路" and first.address == "株洲市, 芦淞区"
    from app.stations.vocabulary import amenity_names
    assert amenity_names(first.amenities_yes) == ["toilet", "hot_water"]
    assert amenity_names(first.amenities_no) == ["baby_change"]


def _world():
    from app.geo.geodesic import Box
    return Box(-90, -180, 90, 180)


def _all():
    from app.stations.model import StationFilter
    return StationFilter()


def test_one_bad_row_imports_nothing_and_lists_every_bad_row(cli, store, tmp_path):
    store_before = store.count()
    text = HEADER + "\n" + "\n".join([
        "ok1,好站,toilet,27.83,113.15,,,,,",
        "bad1,,toilet,27.83,113.15,,,,,",               # line 3: missing name
        "bad2,坏站,toilet,95,113.15,,,,,",              # line 4: latitude out of range
        "bad3,坏站,spaceship,27.83,113.15,,,,,",        # line 5: unknown kind
        "bad4,坏站,toilet,27.83,113.15,jacuzzi,,,,",    # line 6: unknown amenity
        "bad5,坏站,toilet,twenty,113.15,,,,,",          # line 7: unparsable number
        "bad6,坏站,toilet,27.83,113.15,,sometimes,,,",  # line 8: unparsable hours
        "ok1,重复,toilet,27.83,113.15,,,,,",             # line 9: duplicate id
        "ok2,好站,toilet,27.84,113.15,,,,,",
    ]) + "\n"
    result = run_import(cli, write(tmp_path, "bad.csv", text))
    assert result.exit_code == 1
    out = result.output
    for line, field in [(3, "name"), (4, "lat"), (5, "kind"), (6, "amenities"), (7, "lat"),
                        (8, "opening_hours"), (9, "source_id")]:
        assert f"line {line}: {field}:" in out, (line, out)
    assert "Nothing imported" in out
    assert store.count() == store_before


def test_skip_invalid_imports_the_good_rows_and_still_lists_the_bad(cli, store, tmp_path):
    text = HEADER + "\nok1,好站,toilet,27.83,113.15,,,,,\nbad,坏站,toilet,27.83,999,,,,,\n"
    result = run_import(cli, write(tmp_path, "mixed.csv", text), "--skip-invalid")
    assert result.exit_code == 0
    assert "line 3: lng:" in result.output
    assert store.count() == 1


def test_dry_run_writes_nothing(cli, store, tmp_path):
    text = HEADER + "\nok1,好站,toilet,27.83,113.15,,,,,\n"
    result = run_import(cli, write(tmp_path, "d.csv", text), "--dry-run")
    assert result.exit_code == 0 and "Dry run" in result.output
    assert store.count() == 0


def test_reimport_updates_instead_of_duplicating(cli, store, tmp_path):
    path = write(tmp_path, "s.csv", HEADER + "\n1,站,toilet,27.83,113.15,,,,,\n2,站,toilet,27.84,113.15,,,,,\n")
    assert run_import(cli, path).exit_code == 0
    path = write(tmp_path, "s.csv", HEADER + "\n1,新名字,toilet,27.83,113.15,,,,,\n2,站,toilet,27.84,113.15,,,,,\n")
    result = run_import(cli, path)
    assert "0 new, 1 updated, 1 unchanged" in result.output
    assert store.count() == 2


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_coordinates_are_converted_to_wgs84_on_import(cli, store, tmp_path, system):
    true_lat, true_lng = 27.83, 113.15
    s_lat, s_lng = from_wgs84(true_lat, true_lng, system)
    path = write(tmp_path, "g.csv", HEADER + f"\n1,站,toilet,{s_lat!r},{s_lng!r},,,,,\n")
    assert run_import(cli, path, "--coordsys", system).exit_code == 0
    (st,) = store.within(_world(), _all(), 10)[0]
    assert distance_m(st.lat, st.lng, true_lat, true_lng) < 0.01


def test_missing_header_and_wrong_format_fail_clearly(cli, tmp_path):
    result = run_import(cli, write(tmp_path, "h.csv", "id,title\n1,x\n"))
    assert result.exit_code != 0 and "CSV header lacks" in result.output
    result = run_import(cli, write(tmp_path, "x.txt", "hello"))
    assert result.exit_code != 0 and "--format" in result.output
    result = run_import(cli, write(tmp_path, "b.geojson", "{not json"))
    assert result.exit_code != 0 and "not valid JSON" in result.output
    result = run_import(cli, write(tmp_path, "l1.csv", HEADER + "\n1,站,toilet,27.8,113.1,,,,,\n", "gb18030"))
    assert result.exit_code == 0  # pure ASCII content decodes either way
    result = run_import(cli, write(tmp_path, "gbk.csv", HEADER + "\n1,公厕,toilet,27.8,113.1,,,,,\n", "gb18030"))
    assert result.exit_code != 0 and "not UTF-8" in result.output


def test_geojson_with_our_properties(cli, store, tmp_path):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "w1", "geometry": {"type": "Point", "coordinates": [113.15, 27.83]},
         "properties": {"name": "饮水点", "kind": "water_point", "amenities": ["hot_water"], "opening_hours": "24/7"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.16, 27.84]},
         "properties": {"source_id": "t1", "name": "公厕", "kind": "toilet", "amenities": "accessible_toilet"}},
    ]}
    path = write(tmp_path, "p.geojson", json.dumps(doc, ensure_ascii=False))
    result = run_import(cli, path)
    assert result.exit_code == 0, result.output
    assert sorted(s.source_id for s in store.within(_world(), _all(), 10)[0]) == ["t1", "w1"]


def test_geojson_with_osm_tags(tmp_path):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "node/1", "geometry": {"type": "Point", "coordinates": [24.94, 60.17]},
         "properties": {"amenity": "toilets", "wheelchair": "yes", "changing_table": "no", "fee": "no",
                        "opening_hours": "Mo-Su 06:00-22:00"}},
        {"type": "Feature", "id": "node/2", "geometry": {"type": "Point", "coordinates": [24.95, 60.17]},
         "properties": {"amenity": "drinking_water", "name": "Kaivo"}},
        {"type": "Feature", "id": "node/3", "geometry": {"type": "Point", "coordinates": [24.95, 60.18]},
         "properties": {"amenity": "charging_station", "bicycle": "yes"}},
        {"type": "Feature", "id": "node/4", "geometry": {"type": "Point", "coordinates": [24.95, 60.18]},
         "properties": {"amenity": "charging_station", "motorcar": "yes"}},  # a car charger: not for us
        {"type": "Feature", "id": "way/5", "geometry": {"type": "Polygon", "coordinates": [
            [[24.93, 60.16], [24.931, 60.16], [24.931, 60.161], [24.93, 60.161], [24.93, 60.16]]]},
         "properties": {"amenity": "shelter"}},
        {"type": "Feature", "id": "node/6", "geometry": {"type": "Point", "coordinates": [24.95, 60.17]},
         "properties": {"amenity": "toilets", "access": "private"}},
    ]}
    parsed = parse_file(write(tmp_path, "osm.geojson", json.dumps(doc)), source="osm")
    assert parsed.errors == [] and parsed.not_stations == 2
    by_id = {s.source_id: s for s in parsed.stations}
    assert {k: v.kind for k, v in by_id.items()} == {
        "node/1": "toilet", "node/2": "water_point", "node/3": "charging", "way/5": "rest_station"}
    from app.stations.vocabulary import amenity_names
    toilet = by_id["node/1"]
    assert amenity_names(toilet.amenities_yes) == ["toilet", "accessible_toilet"]
    assert amenity_names(toilet.amenities_no) == ["baby_change"]
    assert toilet.fee == "no" and toilet.opening_hours == "Mo-Su 06:00-22:00"
    assert toilet.name == "公共厕所" and by_id["node/2"].name == "Kaivo"
    assert 60.16 < by_id["way/5"].lat < 60.161  # a point inside the shelter's outline


def test_demo_file_is_valid_and_in_gcj02():
    parsed = parse_file("data/demo/zhuzhou_demo.csv", coordsys="gcj02", source="demo")
    assert parsed.errors == [] and len(parsed.stations) > 100
    raw_first = open("data/demo/zhuzhou_demo.csv", encoding="utf-8").read().splitlines()[1].split(",")
    st = parsed.stations[0]
    # the stored (WGS-84) point, shifted back to GCJ-02, is the file's point
    assert distance_m(*wgs84_to_gcj02(st.lat, st.lng), float(raw_first[3]), float(raw_first[4])) < 0.01


def test_battery_counts_are_imported_and_checked(cli, store, tmp_path):
    header = HEADER + ",batteries_available"
    path = write(tmp_path, "b.csv", header + "\nb1,换电柜,battery_swap,27.83,113.15,,24/7,,,customers,7\n"
                                             "t1,公厕,toilet,27.84,113.15,,,,,,\n")
    assert run_import(cli, path).exit_code == 0
    got = {s.source_id: s.batteries_available for s in store.within(_world(), _all(), 10)[0]}
    assert got == {"b1": 7, "t1": None}
    bad = write(tmp_path, "bad.csv", header + "\nb2,换电柜,battery_swap,27.83,113.15,,,,,,-3\n")
    result = run_import(cli, bad)
    assert result.exit_code == 1 and "line 2: batteries_available:" in result.output


def test_a_file_that_cannot_be_read_is_a_clear_error(cli, store, tmp_path, monkeypatch):
    """No read permission (or a disk error) is said in one line, not a traceback; nothing is written.
    As root every file is readable, so the refusal is simulated where the importer opens the file."""
    from app.stations import importing

    path = write(tmp_path, "locked.csv", HEADER + "\n1,好站,toilet,27.83,113.15,,,,,\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(importing, "open", refuse, raising=False)
    result = run_import(cli, path)
    assert result.exit_code == 1
    assert f"Error: cannot read {path}: Permission denied" in result.output
    assert "Traceback" not in result.output and store.count() == 0
