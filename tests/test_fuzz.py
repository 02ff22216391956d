"""Schema-driven fuzzing: the generated OpenAPI document against the running API, on both stores.

Schemathesis generates requests from /api/v1/openapi.json — valid ones (positive) and
ones that break a documented constraint (negative) — and checks every answer:
no server errors; status codes, content types and bodies as documented; valid data
accepted and invalid data rejected, so documented constraints and what the API
accepts cannot drift apart. The number of examples is bounded so the run is short.

The staff endpoints are called with the bearer token of an organisation manager whose
organisation owns nothing: every request gets past authentication and its input is
validated, and whatever id the generator picks is invisible (404), so no documented
request is refused for a rule of the stored state (closing a station needs a reason...),
which tests/test_ops_api.py covers. Schemathesis's own ``ignored_auth`` check then
repeats each answered request without and with a made-up credential and expects 401.
"""
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from app.api.contract import ENDPOINTS
from app.auth import limiter
from tests.helpers import station

EXAMPLES_PER_OPERATION = 40


@pytest.fixture
def staff_headers(ops):
    """A live token of a staff member who may call every staff endpoint and sees nothing."""
    ops.accounts.create_organisation("fuzz", "Fuzzing unit")
    ops.accounts.create_user("fuzz@yizhan.example", "fuzzing password 1", "org_manager", "fuzz")
    return {"Authorization": f"Bearer {ops.accounts.create_token('fuzz@yizhan.example')}"}


@pytest.fixture
def api(client, store, monkeypatch):
    """The app serving this test's transaction, with a few stations near the documented examples,
    and rate-limit counts of its own (ratings are limited per address; the shared Redis would
    carry one run's counts into the next, and into other tests from 127.0.0.1)."""
    monkeypatch.setattr(limiter, "_key_prefix", f"yizhan-test-{uuid.uuid4().hex}")
    store.upsert([
        station("f1", 27.83, 113.15, hours="24/7", yes=("hot_water",)),
        station("f2", 27.831, 113.151, "battery_swap", hours="Mo-Fr 08:00-18:00"),
        station("f3", 0.0005, 0.0005, "rest_station"),  # near (0, 0), where generators like to start
    ])
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", client.application)


def _documented_cross_field_rules(case) -> bool:
    """Rules JSON Schema cannot state, given in the parameters' descriptions: a bbox has min <= max.

    (Inverted boxes have their own tests: a 400 naming `bbox`.)
    """
    box = (case.query or {}).get("bbox")
    if isinstance(box, str):
        box = box.split(",")
    try:
        west, south, east, north = (float(v) for v in box)
    except (TypeError, ValueError):
        return True  # not four numbers: not this rule's business
    return west <= east and south <= north


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _has_input(operation) -> bool:
    return bool(operation.query or operation.path_parameters or operation.body)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_own_document(api, staff_headers, mode):
    failures, calls = [], {}
    for operation in _operations(api):
        if mode == GenerationMode.NEGATIVE and not _has_input(operation):
            continue  # nothing to make invalid
        credentials = staff_headers if operation.definition.raw.get("security") else {}
        @given(operation.as_strategy(generation_mode=mode).filter(_documented_cross_field_rules))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def check(case):
            calls[operation.label] = calls.get(operation.label, 0) + 1
            # The WSGI client does not undo gzip; ask for plain bodies.
            case.call_and_validate(headers={"Accept-Encoding": "identity", **credentials})

        try:
            check()
        except Exception as exc:  # collect every operation's first failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # Not a vacuous pass: every operation was really exercised (those without parameters
    # have a single possible request, and nothing to make invalid).
    for operation in _operations(api):
        has_parameters = _has_input(operation)
        if has_parameters or mode == GenerationMode.POSITIVE:
            assert calls.get(operation.label, 0) >= (5 if has_parameters else 1), (operation.label, calls)


def test_every_route_is_fuzzed(app):
    """A route registered without the declaration would escape both the document and this fuzzing."""
    declared = {e.name for e in ENDPOINTS}
    routed = {rule.endpoint.removeprefix("api.") for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/v1")}
    assert routed == declared
