"""Problem categories (Open311 service codes): declared once, as data an organisation may edit.

``DEFAULT_CATEGORIES`` is what a new organisation starts with. An organisation's edited list
arrives as plain dicts (a form, a JSON body, a database row); ``validate_categories`` says
everything wrong with it at once, and ``categories_from_dicts`` turns a valid list into
``Category`` objects. ``category_to_dict`` / ``category_from_dict`` round-trip one category.

Where the default limits come from (issue #8):
- the public-facility service standard: a response within 20 minutes, complaints handled
  in a closed loop graded by severity (投诉分级处理);
- Shenzhen's operations centre: a cleaner on site within 10 minutes of a work order;
- city practice for ordinary problems: resolved within 24 hours; complex ones (repairs that
  need parts or a contractor, data that must be checked) within 7 working days.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

LANGUAGES = ("zh-CN", "en")

# Most to least pressing: a staff queue sorts by due time, then by this order.
PRIORITIES = ("urgent", "high", "normal", "low")

CODE_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
CODE_MAX_LENGTH = 40
CATEGORY_KEYS = frozenset({"code", "name", "description", "priority", "response", "resolution"})
LIMIT_KEYS = frozenset({"minutes", "working_days"})


class InvalidCategories(ValueError):
    """An organisation's category list is not usable; ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def _limit_problems(value: Mapping[str, Any]) -> list[str]:
    unknown = sorted(set(value) - LIMIT_KEYS)
    if unknown:
        return [f"has unknown field(s) {', '.join(map(str, unknown))}; "
                "give exactly one of minutes or working_days"]
    given = {key: number for key, number in value.items() if number is not None}
    if len(given) != 1:
        return ["must give exactly one of minutes or working_days"]
    (key, number), = given.items()
    # bool is an int in Python; True minutes is a mistake, not 1 minute.
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        return [f"{key} must be a whole number greater than 0, not {number!r}"]
    return []


@dataclass(frozen=True)
class Limit:
    """A time limit: either whole minutes (wall clock) or whole working days (China's calendar)."""

    minutes: int | None = None
    working_days: int | None = None

    def __post_init__(self) -> None:
        problems = _limit_problems({"minutes": self.minutes, "working_days": self.working_days})
        if problems:
            raise ValueError(f"limit {problems[0]}")

    def to_dict(self) -> dict[str, int]:
        if self.minutes is not None:
            return {"minutes": self.minutes}
        return {"working_days": self.working_days}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Limit":
        return cls(minutes=data.get("minutes"), working_days=data.get("working_days"))


@dataclass(frozen=True)
class Category:
    code: str  # the Open311 service_code
    names: dict[str, str]  # language -> name
    descriptions: dict[str, str]  # language -> one line
    priority: str
    response: Limit  # confirmed or assigned by then
    resolution: Limit  # fixed or closed by then


MINUTES_PER_HOUR = 60
ORDINARY_RESOLUTION = Limit(minutes=24 * MINUTES_PER_HOUR)  # ordinary problems: 24 h
COMPLEX_RESOLUTION = Limit(working_days=7)  # complex problems: 7 working days
STANDARD_RESPONSE = Limit(minutes=20)  # public-facility service standard: respond ≤ 20 min
CLEANER_ON_SITE = Limit(minutes=10)  # Shenzhen: a cleaner on site ≤ 10 min
DESK_RESPONSE = Limit(working_days=1)  # a data correction is desk work, not a site visit


def _category(code, zh_name, en_name, zh_text, en_text, priority, response, resolution):
    return Category(code, {"zh-CN": zh_name, "en": en_name}, {"zh-CN": zh_text, "en": en_text},
                    priority, response, resolution)


DEFAULT_CATEGORIES: tuple[Category, ...] = (
    _category("dirty", "卫生差", "Dirty",
              "地面、便池或洗手台不洁净，有异味。", "Floor, toilets or basins dirty, or it smells.",
              "high", CLEANER_ON_SITE, ORDINARY_RESOLUTION),
    _category("no_paper", "缺纸/缺洗手液", "No paper or soap",
              "厕纸、擦手纸或洗手液用完。", "Toilet paper, paper towels or soap have run out.",
              "normal", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
    _category("no_water", "无水/无热水", "No water or hot water",
              "水龙头、冲水或饮水机没有水或热水。", "No water, no flush, or no hot drinking water.",
              "high", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
    # Repairs usually need parts or a contractor: the complex limit.
    _category("facility_broken", "设施损坏", "Something broken",
              "门锁、灯、烘手器等设施损坏。", "A lock, light, hand dryer or other fitting is broken.",
              "normal", STANDARD_RESPONSE, COMPLEX_RESOLUTION),
    # Often the only toilet a wheelchair user can use: ranked above other repairs.
    _category("accessible_broken", "无障碍设施不可用", "Accessible facilities unusable",
              "无障碍厕位、扶手、坡道等无法使用。",
              "Accessible toilet, grab rails or ramp cannot be used.",
              "high", STANDARD_RESPONSE, COMPLEX_RESOLUTION),
    _category("closed_unexpectedly", "未按时开放", "Closed when it should be open",
              "在公布的开放时间内未开放。", "Closed during its published opening hours.",
              "high", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
    _category("info_wrong", "位置/信息有误", "Wrong location or details",
              "地图上的位置、开放时间或设施信息不正确。",
              "The map position, opening hours or amenities shown are wrong.",
              "low", DESK_RESPONSE, COMPLEX_RESOLUTION),
    # A dead cabinet strands riders whose battery is flat.
    _category("cabinet_fault", "换电柜故障", "Battery cabinet fault",
              "换电柜无法换电、无法充电或无法打开。",
              "The battery cabinet will not swap, charge or open.",
              "high", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
    # Graded handling: danger to people is the one urgent category.
    _category("safety", "安全隐患", "Safety hazard",
              "漏电、地面湿滑、结构松动等危及人身安全的问题。",
              "Exposed wiring, slippery floor, loose structure or other danger to people.",
              "urgent", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
    _category("other", "其他", "Other",
              "其他问题，请在描述中说明。", "Anything else: please describe it.",
              "normal", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
)


# Opened by the sensors (app.ops.sensors), never chosen by a reporter: not in an organisation's
# editable list, so the public form and Open311 do not offer them, but named like any category.
# Shenzhen's rule: the cleaner is on site within 10 minutes, and checking in there (the door's QR
# code) is the cleaning done, so both limits are the on-site limit.
SENSOR_CATEGORIES: tuple[Category, ...] = (
    _category("cleaning_required", "需要保洁", "Cleaning due",
              "客流达到阈值或氨气/硫化氢超标，需保洁员到场。",
              "Visitors reached the threshold, or NH3/H2S is above its limit: a cleaner is needed.",
              "high", CLEANER_ON_SITE, CLEANER_ON_SITE),
    _category("sensor_offline", "传感器离线", "Sensor offline",
              "客流计数器或气体传感器长时间没有上报。",
              "A people counter or gas sensor has not reported for too long.",
              "normal", STANDARD_RESPONSE, ORDINARY_RESOLUTION),
)


def find_category(categories: Sequence[Category], code: str) -> Category | None:
    """The category with this code in an organisation's list, else among the sensors' own."""
    for category in (*categories, *SENSOR_CATEGORIES):
        if category.code == code:
            return category
    return None


def category_to_dict(category: Category) -> dict[str, Any]:
    return {
        "code": category.code,
        "name": dict(category.names),
        "description": dict(category.descriptions),
        "priority": category.priority,
        "response": category.response.to_dict(),
        "resolution": category.resolution.to_dict(),
    }


def category_from_dict(data: Mapping[str, Any]) -> Category:
    """One category from its dict form; ``InvalidCategories`` lists every problem."""
    errors = _category_problems(data, label=f"category {data.get('code')!r}"
                                if isinstance(data, Mapping) else "category")
    if errors:
        raise InvalidCategories(errors)
    return Category(
        code=data["code"],
        names={lang: data["name"][lang].strip() for lang in LANGUAGES},
        descriptions={lang: data["description"][lang].strip() for lang in LANGUAGES},
        priority=data["priority"],
        response=Limit.from_dict(data["response"]),
        resolution=Limit.from_dict(data["resolution"]),
    )


def categories_from_dicts(items: Sequence[Mapping[str, Any]]) -> tuple[Category, ...]:
    errors = validate_categories(items)
    if errors:
        raise InvalidCategories(errors)
    return tuple(category_from_dict(item) for item in items)


def validate_categories(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every problem with an organisation's edited list, in order; empty when it is usable."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        return ["categories must be a list"]
    if not items:
        return ["categories must not be empty: reporters need at least one problem to choose"]
    errors: list[str] = []
    first_position: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        code = item.get("code") if isinstance(item, Mapping) else None
        label = f"category {position}" + (f" ({code})" if isinstance(code, str) and code else "")
        errors.extend(_category_problems(item, label))
        if isinstance(code, str):
            if code in first_position:
                errors.append(f"{label}: code {code!r} is already used by category "
                              f"{first_position[code]}; codes must be unique")
            else:
                first_position[code] = position
    return errors


def _category_problems(item: Any, label: str) -> list[str]:
    if not isinstance(item, Mapping):
        return [f"{label}: must be an object with {', '.join(sorted(CATEGORY_KEYS))}"]
    errors: list[str] = []
    unknown = sorted(set(item) - CATEGORY_KEYS)
    if unknown:
        errors.append(f"{label}: unknown field(s) {', '.join(unknown)}; "
                      f"expected {', '.join(sorted(CATEGORY_KEYS))}")
    code = item.get("code")
    if not isinstance(code, str) or not CODE_PATTERN.match(code) or len(code) > CODE_MAX_LENGTH:
        errors.append(f"{label}: code {code!r} must be snake_case (lower-case letters, digits "
                      f"and single underscores, starting with a letter), at most "
                      f"{CODE_MAX_LENGTH} characters")
    for field in ("name", "description"):
        errors.extend(_labels_problems(item.get(field), f"{label}: {field}"))
    priority = item.get("priority")
    if priority not in PRIORITIES:
        errors.append(f"{label}: priority {priority!r} must be one of {', '.join(PRIORITIES)}")
    limits = {}
    for field in ("response", "resolution"):
        value = item.get(field)
        if not isinstance(value, Mapping):
            errors.append(f"{label}: {field} limit must be an object with minutes or working_days")
            continue
        problems = _limit_problems(value)
        errors.extend(f"{label}: {field} limit {problem}" for problem in problems)
        if not problems:
            limits[field] = Limit.from_dict(value)
    if len(limits) == 2:
        errors.extend(_order_problems(limits["response"], limits["resolution"], label))
    return errors


def _labels_problems(value: Any, label: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{label} must give text in {' and '.join(LANGUAGES)}"]
    errors = [f"{label} is missing in {lang}" for lang in LANGUAGES
              if not isinstance(value.get(lang), str) or not value[lang].strip()]
    unknown = sorted(set(value) - set(LANGUAGES))
    if unknown:
        errors.append(f"{label} has unsupported language(s) {', '.join(map(str, unknown))}; "
                      f"expected {' and '.join(LANGUAGES)}")
    return errors


def _order_problems(response: Limit, resolution: Limit, label: str) -> list[str]:
    """Responding after the problem must already be fixed makes no sense (same units only:
    minutes and working days are not comparable without a calendar and a start time)."""
    for unit in ("minutes", "working_days"):
        answer, fix = getattr(response, unit), getattr(resolution, unit)
        if answer is not None and fix is not None and answer > fix:
            return [f"{label}: response limit ({answer} {unit.replace('_', ' ')}) is longer "
                    f"than the resolution limit ({fix} {unit.replace('_', ' ')})"]
    return []

