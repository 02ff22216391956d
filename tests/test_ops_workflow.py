"""The pure operations core: the work-order state table, its event log, and problem categories.

No database here: these modules take and return plain values.
"""
import copy
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.ops import categories as cats
from app.ops import workflow as wf
from app.ops.categories import (
    DEFAULT_CATEGORIES, InvalidCategories, Limit, categories_from_dicts, category_from_dict,
    category_to_dict, validate_categories,
)
from app.ops.workflow import (
    Event, InvalidHistory, InvalidReason, TransitionNotAllowed, UnknownState, check_transition,
    replay,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=SH)

# The table written out by hand (not read back from wf.TRANSITIONS), so a change to the
# module's table fails here until someone decides it on purpose.
EXPECTED_ALLOWED = {
    ("new", "confirmed"), ("new", "assigned"), ("new", "closed"),
    ("confirmed", "assigned"), ("confirmed", "in_progress"), ("confirmed", "fixed"),
    ("confirmed", "closed"),
    ("assigned", "assigned"), ("assigned", "in_progress"), ("assigned", "fixed"),
    ("assigned", "closed"),
    ("in_progress", "assigned"), ("in_progress", "fixed"), ("in_progress", "closed"),
    ("fixed", "closed"), ("fixed", "reopened"),
    ("closed", "reopened"),
    ("reopened", "confirmed"), ("reopened", "assigned"), ("reopened", "in_progress"),
    ("reopened", "fixed"), ("reopened", "closed"),
}
ALL_STATES = ("new", "confirmed", "assigned", "in_progress", "fixed", "closed", "reopened")
ALL_PAIRS = [(a, b) for a in ALL_STATES for b in ALL_STATES]


def _reason_for(current, to):
    """The closing reason that fits: ``resolved`` after ``fixed``, ``duplicate`` otherwise."""
    if to != "closed":
        return None
    return "resolved" if current == "fixed" else "duplicate"


def test_states_and_types_are_declared_once():
    assert set(wf.STATES) == set(ALL_STATES)
    assert wf.STATE_TYPES["fixed"] == "fixed" and wf.STATE_TYPES["closed"] == "closed"
    assert {s for s, kind in wf.STATE_TYPES.items() if kind == "open"} == {
        "new", "confirmed", "assigned", "in_progress", "reopened"}
    assert set(wf.STATE_TYPES.values()) == set(wf.STATE_TYPE_NAMES)


@pytest.mark.parametrize("current,to", ALL_PAIRS)
def test_every_pair_of_states(current, to):
    """49 pairs: the 22 allowed pass; the other 27 raise naming exactly the allowed states."""
    allowed_here = [b for b in ALL_STATES if (current, b) in EXPECTED_ALLOWED]
    if (current, to) in EXPECTED_ALLOWED:
        check_transition(current, to, _reason_for(current, to))
        assert to in wf.allowed_next(current)
        return
    with pytest.raises(TransitionNotAllowed) as caught:
        check_transition(current, to, _reason_for(current, to))
    message = str(caught.value)
    assert f"cannot go from {current!r} to {to!r}" in message
    listed = message.split(f"allowed from {current!r}: ")[1].split(", ")
    assert sorted(listed) == sorted(allowed_here)


def test_table_is_the_expected_one_in_size():
    """22 allowed of 49: if this count moves, EXPECTED_ALLOWED above must be reviewed."""
    assert sum(len(targets) for targets in wf.TRANSITIONS.values()) == len(EXPECTED_ALLOWED) == 22


def test_transition_not_allowed_is_a_value_error():
    assert issubclass(TransitionNotAllowed, ValueError)
    with pytest.raises(ValueError, match="allowed from 'closed': reopened"):
        check_transition("closed", "fixed")


def test_unknown_states_are_named():
    with pytest.raises(UnknownState, match="unknown state 'done'; states are new, confirmed"):
        check_transition("new", "done")
    with pytest.raises(UnknownState, match="unknown state 'open'"):
        check_transition("open", "closed", "duplicate")


@pytest.mark.parametrize("current", ["new", "confirmed", "assigned", "in_progress", "reopened"])
@pytest.mark.parametrize("reason", ["duplicate", "not_responsible", "unable_to_fix"])
def test_open_states_close_with_the_non_resolved_reasons(current, reason):
    check_transition(current, "closed", reason)


@pytest.mark.parametrize("current", ["new", "confirmed", "assigned", "in_progress", "reopened"])
def test_resolved_only_after_fixed(current):
    with pytest.raises(TransitionNotAllowed,
                       match=rf"cannot close as 'resolved' from '{current}' \(only from fixed\)"):
        check_transition(current, "closed", "resolved")
    check_transition("fixed", "closed", "resolved")


@pytest.mark.parametrize("reason", ["duplicate", "not_responsible", "unable_to_fix"])
def test_fixed_closes_only_as_resolved(reason):
    with pytest.raises(TransitionNotAllowed, match="from 'fixed' close as resolved"):
        check_transition("fixed", "closed", reason)


def test_reason_required_exactly_when_closing():
    with pytest.raises(InvalidReason, match="closing needs a reason: one of duplicate, "
                                            "not_responsible, unable_to_fix, resolved"):
        check_transition("new", "closed")
    with pytest.raises(InvalidReason, match="unknown closing reason 'spam'"):
        check_transition("new", "closed", "spam")
    with pytest.raises(InvalidReason, match="only given when closing, not when going to 'fixed'"):
        check_transition("in_progress", "fixed", "resolved")


def test_clock_stopping_states():
    assert wf.RESPONSE_STATES >= {"confirmed", "assigned"}
    assert "new" not in wf.RESPONSE_STATES and "reopened" not in wf.RESPONSE_STATES
    assert wf.RESOLUTION_STATES == {"fixed", "closed"}


def _history(work_order_id=7):
    """new 09:00 → confirmed 09:05 → assigned 09:10 → in_progress 09:30 → fixed 10:00
    → closed(resolved) 10:30 → reopened 12:00 → assigned (to someone else) 12:10 → fixed 13:00.
    """
    steps = [
        (0, None, "new", {}),
        (5, "new", "confirmed", {}),
        (10, "confirmed", "assigned", {"assignee": "li@example.org"}),
        (30, "assigned", "in_progress", {}),
        (60, "in_progress", "fixed", {"note": "已补充厕纸", "public": True}),
        (90, "fixed", "closed", {"reason": "resolved"}),
        (180, "closed", "reopened", {"note": "又没纸了", "public": True}),
        (190, "reopened", "assigned", {"assignee": "wang@example.org"}),
        (240, "assigned", "fixed", {}),
    ]
    return [Event(work_order_id, T0 + timedelta(minutes=minutes), "zhang@example.org", a, b,
                  **extra) for minutes, a, b, extra in steps]


def test_replay_hand_written_history():
    """Response at 09:05 (first confirmation; reopening does not move it); the current fixed
    spell began at 13:00; the job was last given to wang."""
    history = _history()
    result = replay(history)
    assert result.state == "fixed"
    assert result.reason is None
    assert result.assignee == "wang@example.org"
    assert result.responded_at == T0 + timedelta(minutes=5)
    assert result.resolved_at == T0 + timedelta(minutes=240)


def test_replay_prefix_closed_resolved():
    """Up to 10:30: closed as resolved; resolution stopped at 10:00 when it was fixed."""
    result = replay(_history()[:6])
    assert (result.state, result.reason) == ("closed", "resolved")
    assert result.resolved_at == T0 + timedelta(minutes=60)


def test_replay_reopened_restarts_resolution_clock():
    result = replay(_history()[:7])
    assert result.state == "reopened" and result.resolved_at is None and result.reason is None


def test_replay_rejects_skipped_state():
    forged = _history()[:3] + [Event(7, T0 + timedelta(minutes=20), "x", "assigned", "closed",
                                     reason="resolved")]
    with pytest.raises(InvalidHistory, match=r"event 4 \('assigned' -> 'closed'\): cannot close "
                                             r"as 'resolved' from 'assigned'"):
        replay(forged)


def test_replay_rejects_from_state_that_does_not_match():
    """Event 3 claims to start from in_progress, but after event 2 the order is confirmed."""
    history = _history()
    history[2] = Event(7, history[2].at, "x", "in_progress", "fixed")
    with pytest.raises(InvalidHistory, match="event 3 .* starts from 'in_progress' but the "
                                             "work order is 'confirmed'"):
        replay(history)


def test_replay_rejects_disallowed_transition():
    history = _history()[:2] + [Event(7, T0 + timedelta(minutes=6), "x", "confirmed", "reopened")]
    with pytest.raises(InvalidHistory, match="cannot go from 'confirmed' to 'reopened'"):
        replay(history)


def test_replay_rejects_other_work_orders_and_time_travel_and_bad_start():
    history = _history()
    mixed = history[:3] + [Event(8, history[3].at, "x", "assigned", "in_progress")]
    with pytest.raises(InvalidHistory, match="belongs to work order 8, not 7"):
        replay(mixed)
    backwards = history[:3] + [Event(7, T0, "x", "assigned", "in_progress")]
    with pytest.raises(InvalidHistory, match="earlier than the event before it"):
        replay(backwards)
    with pytest.raises(InvalidHistory, match="event 1 must create the work order"):
        replay(history[1:])
    with pytest.raises(InvalidHistory, match="at least its creating event"):
        replay([])


def test_replay_requires_assignee_exactly_when_assigning():
    history = _history()
    no_assignee = history[:2] + [Event(7, history[2].at, "x", "confirmed", "assigned")]
    with pytest.raises(InvalidHistory, match="assignee is given exactly when assigning"):
        replay(no_assignee)
    stray = history[:2] + [Event(7, history[2].at, "x", "confirmed", "fixed", assignee="li")]
    with pytest.raises(InvalidHistory, match="assignee is given exactly when assigning"):
        replay(stray)


def test_events_are_frozen_and_time_zone_aware():
    event = _history()[0]
    with pytest.raises(AttributeError):
        event.to_state = "fixed"
    with pytest.raises(ValueError, match="has no time zone"):
        Event(7, datetime(2026, 11, 26, 9, 0), "x", None, "new")


# --- categories ------------------------------------------------------------------------------

def _defaults_as_dicts():
    return [category_to_dict(category) for category in DEFAULT_CATEGORIES]


def test_default_categories_are_the_issue_list_and_valid():
    assert [c.code for c in DEFAULT_CATEGORIES] == [
        "dirty", "no_paper", "no_water", "facility_broken", "accessible_broken",
        "closed_unexpectedly", "info_wrong", "cabinet_fault", "safety", "other"]
    assert validate_categories(_defaults_as_dicts()) == []
    assert cats.PRIORITIES == ("urgent", "high", "normal", "low")
    assert {c.priority for c in DEFAULT_CATEGORIES} == set(cats.PRIORITIES)


def test_default_limits_follow_the_sources():
    by_code = {c.code: c for c in DEFAULT_CATEGORIES}
    assert by_code["dirty"].names["zh-CN"] == "卫生差"
    assert by_code["dirty"].response == Limit(minutes=10)  # Shenzhen: cleaner on site ≤ 10 min
    assert by_code["safety"].priority == "urgent"
    assert by_code["safety"].response == Limit(minutes=20)  # urgent: respond ≤ 20 min
    assert by_code["no_water"].resolution == Limit(minutes=1440)  # ordinary: 24 h
    assert by_code["facility_broken"].resolution == Limit(working_days=7)  # complex


def test_round_trip_every_default():
    for category in DEFAULT_CATEGORIES:
        assert category_from_dict(category_to_dict(category)) == category
    assert categories_from_dicts(_defaults_as_dicts()) == DEFAULT_CATEGORIES


def test_limit_needs_exactly_one_positive_whole_unit():
    assert Limit(working_days=7).to_dict() == {"working_days": 7}
    with pytest.raises(ValueError, match="exactly one of minutes or working_days"):
        Limit()
    with pytest.raises(ValueError, match="exactly one of minutes or working_days"):
        Limit(minutes=20, working_days=1)
    with pytest.raises(ValueError, match="minutes must be a whole number greater than 0, not 0"):
        Limit(minutes=0)
    with pytest.raises(ValueError, match="not True"):
        Limit(minutes=True)


def test_broken_organisation_list_reports_every_problem():
    """Category 2 repeats 'dirty'; 3 has a bad code, no English name, a made-up priority,
    two units on its response and -5 minutes to resolve; 4 is not an object; 5 has a typo'd
    field and answers (3 working days) after it must be resolved (2 working days)."""
    items = _defaults_as_dicts()[:2]
    items[1]["code"] = "dirty"
    bad = copy.deepcopy(items[0])
    bad.update(code="No-Water", name={"zh-CN": "无水", "en": "  "}, priority="critical",
               response={"minutes": 20, "working_days": 1}, resolution={"minutes": -5})
    late = copy.deepcopy(items[0])
    late.update(code="slow", response={"working_days": 3}, resolution={"working_days": 2},
                resposne={"minutes": 1})
    errors = validate_categories(items + [bad, "dirty", late])
    assert errors == [
        "category 2 (dirty): code 'dirty' is already used by category 1; codes must be unique",
        "category 3 (No-Water): code 'No-Water' must be snake_case (lower-case letters, digits "
        "and single underscores, starting with a letter), at most 40 characters",
        "category 3 (No-Water): name is missing in en",
        "category 3 (No-Water): priority 'critical' must be one of urgent, high, normal, low",
        "category 3 (No-Water): response limit must give exactly one of minutes or working_days",
        "category 3 (No-Water): resolution limit minutes must be a whole number greater than 0, "
        "not -5",
        "category 4: must be an object with code, description, name, priority, resolution, "
        "response",
        "category 5 (slow): unknown field(s) resposne; expected code, description, name, "
        "priority, resolution, response",
        "category 5 (slow): response limit (3 working days) is longer than the resolution "
        "limit (2 working days)",
    ]
    with pytest.raises(InvalidCategories) as caught:
        categories_from_dicts(items + [bad, "dirty", late])
    assert caught.value.errors == errors


def test_labels_in_both_languages_and_nothing_else():
    item = _defaults_as_dicts()[0]
    item["description"] = {"zh-CN": "脏", "fr": "sale"}
    assert validate_categories([item]) == [
        "category 1 (dirty): description is missing in en",
        "category 1 (dirty): description has unsupported language(s) fr; expected zh-CN and en",
    ]
    item["description"] = "脏"
    assert validate_categories([item]) == [
        "category 1 (dirty): description must give text in zh-CN and en"]


def test_empty_or_non_list_is_refused():
    assert validate_categories([]) == [
        "categories must not be empty: reporters need at least one problem to choose"]
    assert validate_categories({"code": "dirty"}) == ["categories must be a list"]


def test_category_from_dict_raises_with_messages():
    item = _defaults_as_dicts()[0]
    item["priority"] = "asap"
    with pytest.raises(InvalidCategories, match="category 'dirty': priority 'asap' must be one"):
        category_from_dict(item)
