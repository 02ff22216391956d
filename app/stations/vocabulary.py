"""Kinds, amenities, access and status: the fixed vocabulary, with zh-CN and en labels.

Amenities are three-state (yes / no / unknown). They are stored as two bit masks,
``amenities_yes`` and ``amenities_no``; a bit in neither is unknown. The bit of an
amenity is its position in AMENITIES, so new amenities must be appended, never
inserted or reordered.
"""
from __future__ import annotations

from functools import lru_cache

KINDS = {
    "toilet": {"zh-CN": "公共厕所", "en": "Public toilet"},
    "rest_station": {"zh-CN": "驿站 / 户外劳动者服务站", "en": "Rest station"},
    "water_point": {"zh-CN": "饮水点", "en": "Drinking water"},
    "battery_swap": {"zh-CN": "换电柜", "en": "Battery swap"},
    "charging": {"zh-CN": "电动车充电", "en": "E-bike charging"},
}

AMENITIES = {
    "toilet": {"zh-CN": "厕所", "en": "Toilet"},
    "accessible_toilet": {"zh-CN": "无障碍厕所", "en": "Accessible toilet"},
    "baby_change": {"zh-CN": "母婴室 / 换尿布台", "en": "Baby change"},
    "drinking_water": {"zh-CN": "饮用水", "en": "Drinking water"},
    "hot_water": {"zh-CN": "热水", "en": "Hot water"},
    "battery_swap": {"zh-CN": "换电", "en": "Battery swap"},
    "ebike_charging": {"zh-CN": "电动车充电", "en": "E-bike charging"},
    "phone_charging": {"zh-CN": "手机充电", "en": "Phone charging"},
    "microwave": {"zh-CN": "微波炉", "en": "Microwave"},
    "rest_area": {"zh-CN": "休息区", "en": "Rest area"},
    "air_conditioning": {"zh-CN": "空调", "en": "Air conditioning"},
    "first_aid": {"zh-CN": "急救药箱", "en": "First aid"},
    "umbrella": {"zh-CN": "爱心雨伞", "en": "Umbrella"},
    "wifi": {"zh-CN": "无线网络", "en": "Wi-Fi"},
}

# The amenity every station of a kind has by definition.
KIND_CORE_AMENITY = {
    "toilet": "toilet",
    "water_point": "drinking_water",
    "battery_swap": "battery_swap",
    "charging": "ebike_charging",
}

# Kinds whose operator is a brand a courier chooses: batteries and plugs fit one brand's cabinets.
BRANDED_KINDS = ("battery_swap", "charging")

ACCESS = {
    "public": {"zh-CN": "对公众开放", "en": "Open to the public"},
    "customers": {"zh-CN": "仅限顾客", "en": "Customers only"},
    "workers": {"zh-CN": "户外劳动者", "en": "Outdoor workers"},
}

STATUSES = ("active", "closed", "removed")

OPEN_STATES = {
    "open": {"zh-CN": "营业中", "en": "Open"},
    "closed": {"zh-CN": "已关闭", "en": "Closed"},
    "unknown": {"zh-CN": "开放时间未知", "en": "Hours unknown"},
}

_AMENITY_BIT = {name: 1 << i for i, name in enumerate(AMENITIES)}


def amenity_mask(names) -> int:
    """Bit mask of the given amenity names (all must be in AMENITIES)."""
    mask = 0
    for name in names:
        mask |= _AMENITY_BIT[name]
    return mask


def amenity_names(mask: int) -> list[str]:
    """Amenity names whose bit is set in ``mask``, in vocabulary order."""
    return list(_names(mask))


@lru_cache(maxsize=4096)
def _names(mask: int) -> tuple[str, ...]:
    return tuple(name for name, bit in _AMENITY_BIT.items() if mask & bit)


def amenity_states(yes_mask: int, no_mask: int) -> dict[str, str]:
    """Every amenity with its state: "yes", "no" or "unknown"."""
    return {
        name: "yes" if yes_mask & bit else "no" if no_mask & bit else "unknown"
        for name, bit in _AMENITY_BIT.items()
    }
