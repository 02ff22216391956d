"""Fuzzing the endpoints outside the /api/v1 OpenAPI document: Open311 (its own standard: form
fields in, ``[{"code", "description"}]`` errors out) and the GBFS feed. Generated questions, valid
and not, on both stores: never a server error, always the documented shape."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_open311 import BASE, _address, world  # noqa: F401  (world: a fixture)

# Text as people and programs send it (no lone surrogates: a form cannot carry them).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
NUMBER_TEXT = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str), TEXT)
# The calendar's own edges among the dates: a day after 9999-12-31 does not exist.
DATE_TEXT = st.one_of(st.sampled_from(["9999-12-31", "0001-01-01", "2200-12-31T23:59:59+14:00"]), st.dates().map(str), st.datetimes().map(lambda d: d.isoformat() + "+08:00"), TEXT)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ERROR_STATUSES = {400, 403, 404, 413}


def _check(answer, ok_statuses=(200,)):
    assert answer.status_code in set(ok_statuses) | ERROR_STATUSES, (answer.status_code, answer.get_data()[:300])
    body = answer.get_json()
    assert isinstance(body, list)
    if answer.status_code not in ok_statuses:
        assert len(body) == 1 and body[0]["code"] == answer.status_code and body[0]["description"]


@SETTINGS
@given(fields=st.fixed_dictionaries({}, optional={
    "service_code": st.one_of(st.sampled_from(["dirty", "no_water", "safety", "other"]), TEXT),
    "lat": NUMBER_TEXT, "long": NUMBER_TEXT, "coordsys": st.one_of(st.sampled_from(["wgs84", "gcj02", "bd09"]), TEXT),
    "attribute[station_id]": NUMBER_TEXT, "description": TEXT, "phone": TEXT, "email": TEXT,
    "device_id": TEXT, "media_url": TEXT, "first_name": TEXT,
}), keyed=st.booleans())
def test_posts_never_fail_the_server(world, fields, keyed):
    data = {**fields, **({"api_key": world["key"]} if keyed else {})}
    answer = world["client"].post(f"{BASE}/requests.json", data=data, environ_base={"REMOTE_ADDR": _address()})
    _check(answer)


@SETTINGS
@given(params=st.fixed_dictionaries({}, optional={
    "service_request_id": st.one_of(st.lists(st.integers(0, 10**20), max_size=4).map(lambda l: ",".join(map(str, l))),
                                    TEXT),
    "service_code": TEXT, "status": st.one_of(st.sampled_from(["open", "closed", "open,closed"]), TEXT),
    "start_date": DATE_TEXT, "end_date": DATE_TEXT, "coordsys": TEXT, "lang": TEXT,
}))
def test_list_questions_never_fail_the_server(world, params):
    _check(world["client"].get(f"{BASE}/requests.json", query_string=params))


@SETTINGS
@given(path=st.one_of(st.integers(-10, 10**20).map(str), TEXT.filter(lambda s: "/" not in s and "?" not in s
                                                                     and "#" not in s)))
def test_single_request_and_token_lookups_never_fail_the_server(world, path):
    for resource in ("requests", "tokens", "services"):
        _check(world["client"].get(f"{BASE}/{resource}/{path}.json"))


@SETTINGS
@given(params=st.dictionaries(TEXT, TEXT, max_size=3))
def test_the_gbfs_feed_answers_any_query(client, params):
    for name in ("gbfs", "system_information", "station_information", "station_status"):
        answer = client.get(f"/gbfs/{name}.json", query_string=params)
        assert answer.status_code == 200 and answer.get_json()["version"] == "2.3"
