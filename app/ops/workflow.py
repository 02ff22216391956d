"""The work-order state table (after FixMyStreet's model) and its append-only event log.

One table, ``TRANSITIONS``, says which state may follow which; ``check_transition`` is the only
judge (the API maps ``TransitionNotAllowed`` to 409, ``UnknownState`` / ``InvalidReason`` to
400). A work order's state is never stored on its own authority: ``replay`` rebuilds it from the
events, so the state column and the event log cannot disagree.

Decisions where issue #8 is silent:
- ``new`` may only be confirmed, assigned or closed: the first look at a report is the
  response, so fixing it skips no clock silently (confirm or assign first, one tap each).
- ``assigned -> assigned`` is the one self-transition: handing a work order to someone else.
  ``in_progress -> assigned`` hands it over too.
- Closing reasons: ``resolved`` only from ``fixed``; ``duplicate``, ``not_responsible`` and
  ``unable_to_fix`` only from an open state (a fixed problem is closed as resolved, or reopened).
- Any first entry into a state past ``new`` counts as the response (normally ``confirmed`` or
  ``assigned``; closing a report as a duplicate also answers it). Reopening does not restart the
  response clock; the resolution clock runs again until the next ``fixed`` / ``closed``.
- ``assignee`` is part of the event (required exactly on ``-> assigned``): the log is the only
  record of who was given the job.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

# State -> its type (Open311 maps ``open`` to open, ``fixed`` and ``closed`` to closed).
STATE_TYPES: dict[str, str] = {
    "new": "open",
    "confirmed": "open",
    "assigned": "open",
    "in_progress": "open",
    "reopened": "open",
    "fixed": "fixed",
    "closed": "closed",
}
STATES = tuple(STATE_TYPES)
STATE_TYPE_NAMES = ("open", "fixed", "closed")
INITIAL_STATE = "new"
OPEN_STATES = frozenset(state for state, kind in STATE_TYPES.items() if kind == "open")

TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"confirmed", "assigned", "closed"}),
    "confirmed": frozenset({"assigned", "in_progress", "fixed", "closed"}),
    "assigned": frozenset({"assigned", "in_progress", "fixed", "closed"}),
    "in_progress": frozenset({"assigned", "fixed", "closed"}),
    "fixed": frozenset({"closed", "reopened"}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"confirmed", "assigned", "in_progress", "fixed", "closed"}),
}

# Closing reason -> the states it may close from.
CLOSING_REASONS: dict[str, frozenset[str]] = {
    "duplicate": OPEN_STATES,
    "not_responsible": OPEN_STATES,
    "unable_to_fix": OPEN_STATES,
    "resolved": frozenset({"fixed"}),
}

# First entry into any of these stops the response clock (see the module docstring).
RESPONSE_STATES = frozenset(STATES) - {INITIAL_STATE, "reopened"}
# Being in one of these stops the resolution clock; reopening starts it again.
RESOLUTION_STATES = frozenset({"fixed", "closed"})


class UnknownState(ValueError):
    """A state name that is not in the table (bad input: 400)."""


class InvalidReason(ValueError):
    """A closing reason missing, unknown, or given where none belongs (bad input: 400)."""


class TransitionNotAllowed(ValueError):
    """The move does not fit the current state (a conflict: 409)."""


class InvalidHistory(ValueError):
    """An event log that could not have been written by ``check_transition``."""


def _ordered(states: Iterable[str]) -> str:
    wanted = set(states)
    return ", ".join(state for state in STATES if state in wanted) or "none"


def allowed_next(current: str) -> tuple[str, ...]:
    """The states ``current`` may move to, in declared order."""
    _check_known(current)
    return tuple(state for state in STATES if state in TRANSITIONS[current])


def _check_known(state: str) -> None:
    if state not in STATE_TYPES:
        raise UnknownState(f"unknown state {state!r}; states are {', '.join(STATES)}")


def check_transition(current: str, to: str, reason: str | None = None) -> None:
    """Raise unless a work order in ``current`` may move to ``to`` with ``reason``."""
    _check_known(current)
    _check_known(to)
    if to not in TRANSITIONS[current]:
        raise TransitionNotAllowed(
            f"cannot go from {current!r} to {to!r}; allowed from {current!r}: "
            f"{_ordered(TRANSITIONS[current])}")
    if to != "closed":
        if reason is not None:
            raise InvalidReason(f"a reason is only given when closing, not when going to {to!r}")
        return
    if reason is None:
        raise InvalidReason(f"closing needs a reason: one of {', '.join(CLOSING_REASONS)}")
    if reason not in CLOSING_REASONS:
        raise InvalidReason(
            f"unknown closing reason {reason!r}; reasons are {', '.join(CLOSING_REASONS)}")
    if current not in CLOSING_REASONS[reason]:
        fitting = [name for name, sources in CLOSING_REASONS.items() if current in sources]
        raise TransitionNotAllowed(
            f"cannot close as {reason!r} from {current!r} (only from "
            f"{_ordered(CLOSING_REASONS[reason])}); from {current!r} close as "
            f"{', '.join(fitting)}")


@dataclass(frozen=True)
class Event:
    """One entry in a work order's log. The first has ``from_state=None`` and ``to_state='new'``."""

    work_order_id: int
    at: datetime  # time-zone aware
    actor: str  # a staff email, or e.g. "reporter" / "system" for the creating event
    from_state: str | None
    to_state: str
    note: str = ""
    public: bool = False  # shown on the reporter's tracking page and in Open311 status_notes
    reason: str | None = None  # closing reason, exactly when to_state == "closed"
    assignee: str | None = None  # exactly when to_state == "assigned"

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError(f"event time {self.at.isoformat()} has no time zone")


@dataclass(frozen=True)
class Replayed:
    """What the log says now."""

    state: str
    reason: str | None  # closing reason while closed
    assignee: str | None  # the last person given the job
    responded_at: datetime | None  # first entry into a RESPONSE_STATES state
    resolved_at: datetime | None  # when the current fixed/closed spell began; None while open


def replay(events: Iterable[Event]) -> Replayed:
    """Rebuild a work order from its log, raising ``InvalidHistory`` at the first bad event."""
    events = list(events)
    if not events:
        raise InvalidHistory("a work order has at least its creating event")
    first = events[0]
    if first.from_state is not None or first.to_state != INITIAL_STATE:
        raise InvalidHistory(f"event 1 must create the work order (None -> {INITIAL_STATE!r}), "
                             f"not {first.from_state!r} -> {first.to_state!r}")
    if first.reason is not None or first.assignee is not None:
        raise InvalidHistory("event 1 creates the work order: no reason, no assignee")
    state, reason, assignee = INITIAL_STATE, None, None
    responded_at = resolved_at = None
    previous = first
    for number, event in enumerate(events[1:], start=2):
        where = f"event {number} ({event.from_state!r} -> {event.to_state!r})"
        if event.work_order_id != first.work_order_id:
            raise InvalidHistory(f"{where} belongs to work order {event.work_order_id}, "
                                 f"not {first.work_order_id}")
        if event.at < previous.at:
            raise InvalidHistory(f"{where} at {event.at.isoformat()} is earlier than the event "
                                 f"before it ({previous.at.isoformat()})")
        if event.from_state != state:
            raise InvalidHistory(f"{where} starts from {event.from_state!r} but the work order "
                                 f"is {state!r}")
        try:
            check_transition(state, event.to_state, event.reason)
        except ValueError as exc:
            raise InvalidHistory(f"{where}: {exc}") from exc
        if (event.assignee is not None) != (event.to_state == "assigned"):
            raise InvalidHistory(f"{where}: an assignee is given exactly when assigning")
        state, reason = event.to_state, event.reason
        if event.assignee is not None:
            assignee = event.assignee
        if responded_at is None and state in RESPONSE_STATES:
            responded_at = event.at
        if state not in RESOLUTION_STATES:
            resolved_at = None
        elif resolved_at is None:
            resolved_at = event.at
        previous = event
    return Replayed(state, reason, assignee, responded_at, resolved_at)
