"""Files a careless operator might hand the station importer (issue #7), on both stores.

Each bad file must be refused with the line or feature number and the field, before
anything is written; nothing may reach a store as a wrong value or a traceback.
"""
import json
import zipfile

import pytest

from app.geo.geodesic import Box
from app.stations import osm
from app.stations.importing import parse_file, parse_record
from app.stations.model import StationFilter
from app.stations.vocabulary import amenity_names

HEADER = "source_id,name,kind,lat,lng,amenities,opening_hours,address,operator,access"


def write_text(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def write_geojson(tmp_path, name, features):
    return write_text(tmp_path, name, json.dumps({"type": "FeatureCollection", "features": features},
                                                 ensure_ascii=False))


def feature(props, coordinates=(113.15, 27.83), **extra):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(coordinates)},
            "properties": props, **extra}


def run_import(cli, path, *args):
    return cli.invoke(args=["stations", "import", path, *args])


def stored(store):
    """source_id -> stored station."""
    found, _ = store.within(Box(-90, -180, 90, 180), StationFilter(), 100)
    return {s.source_id: s for s in found}


# -- 1. non-finite coordinates -------------------------------------------------


def test_non_finite_geojson_coordinates_are_refused_not_stored_at_zero(cli, store, tmp_path):
    """json reads NaN and Infinity, and 1e400 as inf; shapely then made each of them POINT (0 0)."""
    text = """{"type": "FeatureCollection", "features": [
      {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1e400, 27.8]},
       "properties": {"source_id": "a", "name": "甲", "kind": "toilet"}},
      {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.1, NaN]},
       "properties": {"source_id": "b", "name": "乙", "kind": "toilet"}},
      {"type": "Feature", "geometry": {"type": "Polygon", "coordinates":
         [[[113.1, 27.8], [113.2, 27.8], [-Infinity, 27.9], [113.1, 27.8]]]},
       "properties": {"source_id": "c", "name": "丙", "kind": "toilet"}},
      {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.15, 27.83]},
       "properties": {"source_id": "d", "name": "丁", "kind": "toilet"}}
    ]}"""
    path = write_text(tmp_path, "nonfinite.geojson", text)
    result = run_import(cli, path)
    assert result.exit_code == 1, result.output
    for where in ("feature 1: lng: inf is not a finite number", "feature 2: lat: nan is not a finite number",
                  "feature 3: lng: -inf is not a finite number"):
        assert where in result.output, (where, result.output)
    assert store.count() == 0
    result = run_import(cli, path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    only = stored(store)
    assert list(only) == ["d"] and (only["d"].lat, only["d"].lng) == (27.83, 113.15)


def test_integers_beyond_float_range_are_refused_not_a_crash(cli, store, tmp_path):
    """JSON integers have no size limit; math.isfinite and float() raise OverflowError on 10**400."""
    huge = "1" + "0" * 400
    text = """{"type": "FeatureCollection", "features": [
      {"type": "Feature", "geometry": {"type": "Point", "coordinates": [%s, 27.8]},
       "properties": {"source_id": "a", "name": "甲", "kind": "toilet"}},
      {"type": "Feature", "geometry": {"type": "Point", "coordinates": [113.1, 27.8]},
       "properties": {"source_id": "b", "name": "乙", "kind": "battery_swap", "batteries_available": %s}}
    ]}""" % (huge, huge)
    result = run_import(cli, write_text(tmp_path, "huge.geojson", text))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), repr(result.exception)
    assert "feature 1: lng: an integer beyond float range is not a finite number" in result.output
    assert "feature 2: batteries_available: must be a whole number of batteries, got a number (1000" \
        in result.output
    # Python refuses to read integers of more than 4,300 digits at all
    text = '{"type": "FeatureCollection", "features": [%s]}' % ("1" * 5000)
    result = run_import(cli, write_text(tmp_path, "huger.geojson", text))
    assert result.exit_code == 1 and "Error: not usable JSON: Exceeds the limit (4300 digits)" in result.output
    assert store.count() == 0


# -- 2. absurd nesting -----------------------------------------------------------


def test_json_nested_ten_thousand_deep_is_a_file_error_not_a_traceback(cli, store, tmp_path):
    deep = "[" * 10_000 + "]" * 10_000
    text = '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": ' + deep + "}}]}"
    result = run_import(cli, write_text(tmp_path, "deep.geojson", text))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not RecursionError
    assert "Error: not usable JSON: nested too deeply" in result.output
    assert store.count() == 0


# -- 3. control characters --------------------------------------------------------


def test_a_nul_byte_is_refused_in_validation_not_by_the_database(cli, store, tmp_path):
    """Before: the row passed validation and --dry-run; then PostgreSQL refused it with a
    traceback, and SQLite stored it."""
    path = write_text(tmp_path, "nul.csv", HEADER + "\na,建宁驿站,toilet,27.83,113.15,,,红旗路\x00408号,,\n")
    for args in (("--dry-run",), ()):
        result = run_import(cli, path, *args)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "line 2: address: contains a NUL byte (\\x00) at character 4" in result.output
    assert store.count() == 0


def test_control_characters_are_refused_with_line_and_field(cli, store, tmp_path):
    """Line 4's name is quoted over two lines (lines 4-5), so the next row is line 6."""
    text = HEADER + "\n" + (
        "a,建宁\x00驿站,toilet,27.83,113.15,,,,,\n"           # line 2: NUL in name
        "b,驿站,toilet,27.83,113.15,,,红旗路\x1b[0m,,\n"       # line 3: ESC in address
        'c,"建宁\n驿站",toilet,27.83,113.15,,,,,\n'            # lines 4-5: line break in name
        "d\t,驿站,toilet,27.83,113.15,,,,,\n"                  # line 6: fine (a tab after a value is stripped)
        "e,驿站,toilet,27.83,113.15,,24/7\x7f,,,\n"            # line 7: DEL in opening_hours
        "f,好站,toilet,27.84,113.15,,,,,\n"                    # line 8: fine
    )
    path = write_text(tmp_path, "ctl.csv", text)
    for args in ((), ("--dry-run",)):
        result = run_import(cli, path, *args)
        assert result.exit_code == 1, result.output
        out = result.output
        assert "line 2: name: contains a NUL byte (\\x00) at character 3" in out, out
        assert "line 3: address: contains the control character U+001B at character 4" in out, out
        assert "line 4: name: contains a line break at character 3 (is a quote left open?)" in out, out
        assert "line 7: opening_hours: contains the control character U+007F at character 5" in out, out
        assert "line 6:" not in out
        assert "6 rows: 2 valid, 4 invalid" in out
    assert store.count() == 0


def test_nul_tab_and_lone_surrogate_in_geojson_text_are_refused(cli, store, tmp_path):
    text = json.dumps({"type": "FeatureCollection", "features": [
        feature({"source_id": "a", "name": "甲\u0000", "kind": "toilet"}),
        feature({"source_id": "b", "name": "乙", "kind": "toilet", "operator": "市\t城管局"}),
        feature({"source_id": "c\ud800", "name": "丙", "kind": "toilet"}),
    ]})  # ensure_ascii: the file holds the escapes \\u0000, \\t and \\ud800, as an exporter would write
    result = run_import(cli, write_text(tmp_path, "ctl.geojson", text))
    assert result.exit_code == 1, result.output
    assert "feature 1: name: contains a NUL byte (\\x00) at character 2" in result.output
    assert "feature 2: operator: contains a tab at character 2" in result.output
    assert "feature 3: source_id: contains an unpaired surrogate (\\ud800) at character 2" in result.output
    assert store.count() == 0


# -- 4. values that are not text ------------------------------------------------------


@pytest.mark.parametrize("field, value, reason", [
    ("name", 1.0, "name: must be text, not a number (1.0)"),
    ("name", True, "name: must be text, not a boolean (true)"),
    ("address", {"a": 1}, 'address: must be text, not an object ({"a": 1})'),
    ("operator", ["市城管局"], 'operator: must be text, not a list (["市城管局"])'),
    ("opening_hours", 24, "opening_hours: must be text, not a number (24)"),
    ("source_id", 1.5, "source_id: must be text or a whole number, not a number (1.5)"),
    ("source_id", False, "source_id: must be text or a whole number, not a boolean (false)"),
    ("amenities", [1], "amenities: list items must be text, not a number (1)"),
    ("batteries_available", True, "batteries_available: must be a whole number of batteries, got a boolean (true)"),
    ("batteries_available", 2.5, "batteries_available: must be a whole number of batteries, got a number (2.5)"),
])
def test_geojson_values_of_the_wrong_type_are_refused_not_stored_as_python_reprs(
        cli, store, tmp_path, field, value, reason):
    props = {"source_id": "s1", "name": "公厕", "kind": "toilet", field: value}
    result = run_import(cli, write_geojson(tmp_path, "types.geojson", [feature(props)]))
    assert result.exit_code == 1, result.output
    assert f"feature 1: {reason}" in result.output
    assert store.count() == 0


def test_geojson_numbers_that_have_one_meaning_are_taken(cli, store, tmp_path):
    """A whole-number id is its digits (12 -> "12"), true/false fee is yes/no, 7.0 batteries are 7."""
    features = [
        feature({"source_id": 12, "name": "公厕", "kind": "toilet", "fee": True}),
        feature({"name": "换电柜", "kind": "battery_swap", "fee": False, "batteries_available": 7.0}, id=34),
        feature({"source_id": "x", "name": "饮水点", "kind": "water_point",
                 "amenities": {"hot_water": "yes", "wifi": False, "microwave": None}}),
    ]
    result = run_import(cli, write_geojson(tmp_path, "ok.geojson", features))
    assert result.exit_code == 0, result.output
    got = stored(store)
    assert sorted(got) == ["12", "34", "x"]
    assert (got["12"].fee, got["34"].fee, got["34"].batteries_available) == ("yes", "no", 7)
    assert amenity_names(got["x"].amenities_yes) == ["drinking_water", "hot_water"]
    assert amenity_names(got["x"].amenities_no) == ["wifi"]


# -- 5. GBK from Excel on Chinese Windows ---------------------------------------------


def test_gbk_csv_is_named_as_such_with_the_conversion_command(cli, store, tmp_path):
    """Line 3's first non-ASCII byte is at 76 (header and newline) + 33 (line 2) + 2 ("2,") = 111."""
    text = HEADER + "\n1,station,toilet,27.8,113.1,,,,,\n2,公厕,toilet,27.8,113.1,,,,,\n"
    path = write_text(tmp_path, "excel.csv", text, "gbk")
    result = run_import(cli, path)
    assert result.exit_code == 1
    assert "not UTF-8 text at line 3 (byte 111: invalid start byte)" in result.output
    assert "GBK/GB18030" in result.output and "--encoding gb18030" in result.output
    assert f"iconv -f GB18030 -t UTF-8 {path} > {path[:-len('.csv')]}-utf8.csv" in result.output
    assert store.count() == 0


@pytest.mark.parametrize("encoding", ["gbk", "gb18030"])
def test_encoding_option_reads_gbk(cli, store, tmp_path, encoding):
    text = HEADER + "\n1,建宁驿站（红旗路）,toilet,27.8,113.1,,,株洲市芦淞区,,\n"
    result = run_import(cli, write_text(tmp_path, "excel.csv", text, "gbk"), "--encoding", encoding)
    assert result.exit_code == 0, result.output
    (only,) = stored(store).values()
    assert (only.name, only.address) == ("建宁驿站（红旗路）", "株洲市芦淞区")


def test_encoding_gbk_on_a_utf8_file_is_refused_rather_than_garbled(cli, store, tmp_path):
    """'公厕' in UTF-8 (e5 85 ac e5 8e 95) also decodes as GBK, to three wrong characters."""
    result = run_import(cli, write_text(tmp_path, "u.csv", HEADER + "\n1,公厕,toilet,27.8,113.1,,,,,\n"),
                        "--encoding", "gbk")
    assert result.exit_code == 1
    assert "the file is UTF-8 text, which --encoding gbk would garble; leave out --encoding" in result.output
    assert store.count() == 0


def test_utf16_and_xlsx_from_excel_are_named(cli, tmp_path):
    result = run_import(cli, write_text(tmp_path, "u16.csv", HEADER + "\n1,公厕,toilet,27.8,113.1,,,,,\n", "utf-16"))
    assert result.exit_code == 1 and "the file is UTF-16 text" in result.output
    workbook = tmp_path / "stations.csv"  # an .xlsx renamed: a zip archive
    with zipfile.ZipFile(workbook, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    result = run_import(cli, str(workbook))
    assert result.exit_code == 1 and "the file is a zip archive, such as an Excel workbook" in result.output


# -- 6. digits that are not ASCII -----------------------------------------------------


def test_full_width_and_other_non_ascii_digits_are_refused(cli, store, tmp_path):
    """float('２７.８') == 27.8 and '²'.isdigit(); before, lines 2-4 were stored and line 5 crashed."""
    text = HEADER + ",batteries_available\n" + (
        "a,站,toilet,２７.８３,113.15,,,,,,\n"         # line 2
        "b,站,toilet,27.83,١١٣.١٥,,,,,,\n"              # line 3: Arabic-Indic digits
        "c,换电柜,battery_swap,27.83,113.15,,,,,,７\n"  # line 4
        "d,换电柜,battery_swap,27.83,113.15,,,,,,²\n"   # line 5
        "e,站,toilet,2_7.83,113.15,,,,,,\n"             # line 6: float() takes underscores too
        "f,站,toilet,nan,113.15,,,,,,\n"                # line 7
    )
    result = run_import(cli, write_text(tmp_path, "fw.csv", text))
    assert result.exit_code == 1, result.output
    ascii_hint = "write numbers in ASCII digits 0-9"
    for where in ("line 2: lat: is not a number: '２７.８３'", "line 3: lng: is not a number: '١١٣.١٥'",
                  "line 4: batteries_available: must be a whole number of batteries, got '７'",
                  "line 5: batteries_available: must be a whole number of batteries, got '²'"):
        assert f"{where}; {ascii_hint}" in result.output, (where, result.output)
    assert "line 6: lat: is not a number: '2_7.83'" in result.output
    assert "line 7: lat: is not a number: 'nan'" in result.output
    assert store.count() == 0


# -- 7. typed values between the readers, the OSM mapping and the validator --------------


def test_osm_mapping_gives_amenities_as_a_dict_the_validator_takes():
    fields = osm.station_fields({"amenity": "toilets", "wheelchair": "yes", "changing_table": "no", "name": "WC"})
    assert fields["amenities"] == {"accessible_toilet": "yes", "baby_change": "no"}
    st = parse_record({**fields, "source_id": "node/1", "lat": 60.17, "lng": 24.94},
                      source="osm", coordsys="wgs84", timezone="Europe/Helsinki")
    assert amenity_names(st.amenities_yes) == ["toilet", "accessible_toilet"]
    assert amenity_names(st.amenities_no) == ["baby_change"]


def test_osm_tags_that_are_not_text_are_a_bad_feature_not_a_crash(tmp_path):
    """Before: `["yes"] in {"yes", "designated"}` raised TypeError (unhashable list)."""
    path = write_geojson(tmp_path, "osm.geojson", [
        feature({"amenity": "toilets", "wheelchair": ["yes"]}, id="node/1"),
        feature({"amenity": "toilets", "name": 5}, id="node/2"),
        feature({"amenity": "bench", "@relations": [{"role": "x"}]}, id="node/3"),  # not ours: ignored
    ])
    parsed = parse_file(path, source="osm")
    assert [str(e) for e in parsed.errors] == [
        'feature 1: wheelchair: OSM tag values are text, not a list (["yes"])',
        "feature 2: name: OSM tag values are text, not a number (5)",
    ]
    assert parsed.not_stations == 1 and parsed.stations == []


# -- 8. other careless files --------------------------------------------------------------


@pytest.mark.parametrize("name, text, message", [
    ("empty.csv", "", "the file is empty"),
    ("blank.csv", "\n\r\n\n", "the file is empty (only blank lines)"),
    ("header.csv", HEADER + "\r\n", "the file has a header but no rows"),
    ("excel_blank_rows.csv", HEADER + "\n,,,,,,,,,\n,,,,,,,,,\n", "the file has a header but no rows"),
    ("empty.geojson", "", "the file is empty"),
    ("nothing.geojson", '{"type": "FeatureCollection", "features": []}', "the FeatureCollection has no features"),
    ("twice.csv", HEADER + ",name\n1,a,toilet,27.8,113.1,,,,,,b\n", "CSV header names name more than once"),
])
def test_empty_and_ambiguous_files_are_refused(cli, store, tmp_path, name, text, message):
    result = run_import(cli, write_text(tmp_path, name, text))
    assert result.exit_code == 1 and f"Error: {message}" in result.output, result.output
    assert store.count() == 0


def test_semicolon_csv_from_excel_locales_is_read(cli, store, tmp_path):
    """Where the decimal mark is a comma, Excel separates fields with ";" (and quotes a ";" inside)."""
    text = HEADER.replace(",", ";") + "\r\n" + '1;公厕, 红旗路;toilet;27.83;113.15;"hot_water;baby_change=no";;;;\r\n'
    result = run_import(cli, write_text(tmp_path, "semi.csv", text))
    assert result.exit_code == 0, result.output
    (only,) = stored(store).values()
    assert only.name == "公厕, 红旗路"
    assert amenity_names(only.amenities_yes) == ["toilet", "hot_water"]
    assert amenity_names(only.amenities_no) == ["baby_change"]


def test_excel_scientific_ids_and_zero_zero_points_are_refused(cli, store, tmp_path):
    """Excel saves a 12-digit id in a General cell as 1.23457E+11 (ids collide, the real one is
    gone); exporters write 0,0 for a missing point, which would sit in the Gulf of Guinea."""
    text = HEADER + "\n" + (
        "1.23457E+11,公厕,toilet,27.8,113.1,,,,,\n"   # line 2
        "a,公厕,toilet,0,0,,,,,\n"                    # line 3
        "b,公厕,toilet,0,113.1,,,,,\n"                # line 4: on the equator, fine
        "1E+3,公厕,toilet,27.8,113.1,,,,,\n"          # line 5
    )
    result = run_import(cli, write_text(tmp_path, "excel.csv", text))
    assert result.exit_code == 1
    assert "line 2: source_id: '1.23457E+11' looks like a long number Excel rounded" in result.output
    assert "line 3: lat: lat and lng are both 0, the usual stand-in for a missing location" in result.output
    assert "line 5: source_id: '1E+3' looks like" in result.output
    assert "4 rows: 1 valid, 3 invalid" in result.output
    assert store.count() == 0


def test_a_decimal_comma_is_named(cli, tmp_path):
    text = HEADER.replace(",", ";") + "\n1;公厕;toilet;27,83;113.15;;;;;\n"
    result = run_import(cli, write_text(tmp_path, "comma.csv", text))
    assert result.exit_code == 1
    assert "line 2: lat: is not a number: '27,83'; use a dot as the decimal mark" in result.output


def test_excel_blank_rows_are_skipped_and_unknown_columns_are_named(cli, store, tmp_path):
    """Trailing ",,,…" rows are what Excel leaves below the data; "adress" is a typo worth seeing."""
    text = HEADER + ",adress\n" + (
        "1,公厕,toilet,27.8,113.1,,,,,,红旗路\n"
        ",,,,,,,,,,\n"
        "\n"
        "2,公厕,toilet,27.9,113.1,,,,,,\n"
        ",,,,,,,,,,\n"
    )
    result = run_import(cli, write_text(tmp_path, "typo.csv", text))
    assert result.exit_code == 0, result.output
    assert "typo.csv: ignored columns adress (known: source_id,name," in result.output
    assert "2 rows: 2 valid, 0 invalid" in result.output
    assert sorted(stored(store)) == ["1", "2"]


def test_a_value_under_a_column_without_a_name_is_a_bad_row(cli, store, tmp_path):
    """Excel keeps a header's empty trailing cells; a value under one has no field to go to."""
    text = HEADER + ",,\n1,公厕,toilet,27.8,113.1,,,,,,,\n2,公厕,toilet,27.9,113.1,,,,,,,收费\n"
    result = run_import(cli, write_text(tmp_path, "unnamed.csv", text))
    assert result.exit_code == 1
    assert "line 3: a value in column 12, which has no name in the header" in result.output
    assert store.count() == 0


def test_a_quote_left_open_is_reported_where_it_opens(cli, tmp_path):
    """The open quote on line 3 swallows lines 3-5 into one name; before, the error named line 5."""
    text = HEADER + "\n" + (
        "1,公厕,toilet,27.8,113.1,,,,,\n"
        '2,"公厕,toilet,27.8,113.1,,,,,\n'
        "3,公厕,toilet,27.8,113.1,,,,,\n"
        "4,公厕,toilet,27.8,113.1,,,,,\n"
    )
    result = run_import(cli, write_text(tmp_path, "quote.csv", text))
    assert result.exit_code == 1
    assert "line 3: name: contains a line break at character 26 (is a quote left open?)" in result.output
    assert "2 rows: 1 valid, 1 invalid" in result.output


def test_a_huge_field_names_its_line(cli, tmp_path):
    text = HEADER + "\n1,公厕,toilet,27.8,113.1,,,,,\n2," + "长" * 200_000 + ",toilet,27.8,113.1,,,,,\n"
    result = run_import(cli, write_text(tmp_path, "huge.csv", text))
    assert result.exit_code == 1
    assert "Error: malformed CSV at line 3: field larger than field limit (131072) (is a quote left open?)" \
        in result.output


@pytest.mark.parametrize("geometry, reason", [
    (None, "geometry: is missing; every feature needs a point or a shape"),
    ({"type": "Point", "coordinates": []}, "geometry: has no coordinates"),
    ({"type": "Point", "coordinates": ["113.15", "27.83"]},
     'lng: coordinates must be JSON numbers, not text ("113.15")'),
    ({"type": "Point", "coordinates": [113.15, True]}, "lat: coordinates must be JSON numbers, not a boolean (true)"),
    ("POINT (113.15 27.83)", 'geometry: must be a GeoJSON geometry object, not text ("POINT (113.15 27.83)")'),
])
def test_geometry_that_is_not_numbers_is_refused(tmp_path, geometry, reason):
    """Before: numeric strings and true (as 1.0) were taken as coordinates; a missing point said 'lat'."""
    props = {"source_id": "a", "name": "公厕", "kind": "toilet"}
    doc = [{"type": "Feature", "geometry": geometry, "properties": props}]
    parsed = parse_file(write_geojson(tmp_path, "g.geojson", doc))
    assert [str(e) for e in parsed.errors] == [f"feature 1: {reason}"] and parsed.stations == []
