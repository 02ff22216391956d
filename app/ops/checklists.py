"""The daily inspection checklist (站长制, 每天一督查), per station kind: declared once.

Each item has a code, zh-CN and en labels, and the problem category a failed check opens (or
joins) a work order in. Toilets follow the spirit of the "十净十无" toilet standard; rest
stations check what outdoor workers come for. Kinds not listed get the general items.
"""
from __future__ import annotations

from dataclasses import dataclass

# An inspection more than this far from the station is flagged (the phone's position is
# usually good to 10-50 m; 200 m means "not standing at the station").
FAR_FROM_STATION_M = 200.0


@dataclass(frozen=True)
class Item:
    code: str
    names: dict[str, str]
    category: str  # the work-order category a failure opens


def _item(code, zh, en, category):
    return Item(code, {"zh-CN": zh, "en": en}, category)


_TOILET = (
    _item("floor_clean", "地面洁净", "Floor clean and dry", "dirty"),
    _item("no_odour", "无异味", "No bad smell", "dirty"),
    _item("paper", "厕纸充足", "Toilet paper stocked", "no_paper"),
    _item("soap", "洗手液充足", "Soap stocked", "no_paper"),
    _item("water", "供水正常", "Water and flushing work", "no_water"),
    _item("hand_dryer", "烘手器正常", "Hand dryer works", "facility_broken"),
    _item("accessible_toilet", "无障碍厕位可用", "Accessible toilet usable", "accessible_broken"),
    _item("baby_change", "母婴台可用", "Baby changing table usable", "facility_broken"),
    _item("lights", "照明正常", "Lights work", "facility_broken"),
    _item("no_graffiti", "无乱涂乱画", "No graffiti", "dirty"),
)
_REST_STATION = (
    _item("drinking_water", "饮用水正常", "Drinking water available", "no_water"),
    _item("hot_water", "热水正常", "Hot water available", "no_water"),
    _item("microwave", "微波炉可用", "Microwave works", "facility_broken"),
    _item("charging", "充电设施可用", "Phone and e-bike charging work", "facility_broken"),
    _item("umbrellas", "爱心雨伞在位", "Loan umbrellas in place", "other"),
    _item("first_aid", "急救药箱齐全", "First-aid kit complete", "safety"),
    _item("air_conditioning", "空调正常", "Air conditioning works", "facility_broken"),
    _item("clean", "环境整洁", "Clean and tidy", "dirty"),
)
_BATTERY = (
    _item("cabinet_swaps", "换电柜可换电", "Cabinet swaps batteries", "cabinet_fault"),
    _item("cabinet_clean", "柜体完好整洁", "Cabinet intact and clean", "facility_broken"),
    _item("no_hazard", "无安全隐患", "No safety hazard", "safety"),
)
_GENERAL = (
    _item("working", "设施正常", "Facilities work", "facility_broken"),
    _item("clean", "环境整洁", "Clean and tidy", "dirty"),
    _item("no_hazard", "无安全隐患", "No safety hazard", "safety"),
)

CHECKLISTS: dict[str, tuple[Item, ...]] = {
    "toilet": _TOILET,
    "rest_station": _REST_STATION,
    "battery_swap": _BATTERY,
}


def checklist_for(kind: str) -> tuple[Item, ...]:
    return CHECKLISTS.get(kind, _GENERAL)
