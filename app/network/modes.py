"""Travel modes: the one place their names, speeds, time bounds and snap distances are declared.

Config (speed overrides from the environment), the API (parameter choices and the
OpenAPI enum), ``/api/v1/meta`` (which the page reads), the CLI and the network code
all take them from here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    default_kmh: float
    speed_env: str  # environment variable that overrides the speed
    labels: dict[str, str]


MODES: dict[str, Mode] = {
    # 4.8 km/h walking is 80 m/min, so 15 minutes on foot is 1,200 m.
    "walk": Mode("walk", 4.8, "YIZHAN_WALK_KMH", {"zh-CN": "步行", "en": "Walk"}),
    "ebike": Mode("ebike", 15.0, "YIZHAN_EBIKE_KMH", {"zh-CN": "电动车", "en": "E-bike"}),
}
MODE_NAMES = tuple(MODES)
DEFAULT_MODE = "walk"

# Speeds a deployment may configure (km/h).
MIN_SPEED_KMH, MAX_SPEED_KMH = 0.5, 60.0

# The time budget of a service circle or service area, in whole minutes.
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 1, 30, 15

# A point farther than this from every road is "off the network" (straight-line answer).
SNAP_MAX_M = 300.0
# First, cheaper snapping pass: most points lie this close to a road.
SNAP_FIRST_M = 60.0
# Roads this much farther than a point's nearest road are also where it may join the
# network (the best of them wins); bridges and tunnels only when no street-level road is.
SNAP_TOLERANCE_M = 10.0


def default_speeds() -> dict[str, float]:
    return {name: mode.default_kmh for name, mode in MODES.items()}


def metres_for(minutes: float, speed_kmh: float) -> float:
    """How far ``minutes`` at ``speed_kmh`` takes you, in metres."""
    return speed_kmh * 1000.0 / 60.0 * minutes
