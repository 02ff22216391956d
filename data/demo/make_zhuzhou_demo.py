"""Generate the Zhuzhou (株洲) demo city: DEMO DATA, not real stations.

Modelled on Zhuzhou's 建宁驿站 network (public toilets turned into service stations
with water, hot water, a rest area and umbrellas), plus union rest stations for
outdoor workers (户外劳动者服务站点), battery-swap cabinets, water points and e-bike
charging. Positions are random around the city centre; names carry "演示" (demo).

The output is in GCJ-02, the way a city exports points from Amap, so loading it
exercises the coordinate conversion at the import edge:

    python data/demo/make_zhuzhou_demo.py            # writes data/demo/zhuzhou_demo.csv
    flask --app wsgi stations import data/demo/zhuzhou_demo.csv --coordsys gcj02 --source demo

Deterministic: the same seed always writes the same file.
"""
from __future__ import annotations

import argparse
import csv
import os
import random
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from app.geo.coordsys import wgs84_to_gcj02  # noqa: E402

CENTRE = (27.8300, 113.1500)  # WGS-84, central Zhuzhou (Lusong / Tianyuan by the Xiang river)
ROADS = ["建设路", "新华路", "红旗路", "长江路", "黄河路", "珠江路", "天台路", "湘江路", "人民路",
         "车站路", "新华西路", "株洲大道", "炎帝路", "泰山路", "庐山路", "滨江路", "神农大道", "荷塘路"]
DISTRICTS = ["芦淞区", "天元区", "荷塘区", "石峰区"]

# kind -> (how many, name pattern, amenities choices (amenity, probability yes, probability known), hours choices)
PLAN = {
    "toilet": (80, "建宁驿站·{road}（演示）", [
        ("drinking_water", 0.9, 1.0), ("hot_water", 0.7, 0.9), ("rest_area", 0.8, 1.0),
        ("umbrella", 0.6, 0.8), ("accessible_toilet", 0.7, 0.9), ("baby_change", 0.4, 0.8),
        ("phone_charging", 0.5, 0.7), ("first_aid", 0.4, 0.6), ("wifi", 0.3, 0.5),
        ("air_conditioning", 0.5, 0.7),
    ], ["06:00-22:00", "24/7", "05:30-23:00", "Mo-Su 06:00-22:00", None]),
    "rest_station": (30, "户外劳动者服务站·{road}（演示）", [
        ("drinking_water", 0.95, 1.0), ("hot_water", 0.8, 0.9), ("microwave", 0.7, 0.9),
        ("phone_charging", 0.9, 1.0), ("rest_area", 1.0, 1.0), ("air_conditioning", 0.7, 0.9),
        ("toilet", 0.6, 0.9), ("first_aid", 0.6, 0.8), ("ebike_charging", 0.3, 0.7),
        ("umbrella", 0.4, 0.6), ("wifi", 0.5, 0.7),
    ], ["Mo-Fr 08:00-18:00; PH off", "Mo-Su 08:00-20:00", "Mo-Sa 09:00-17:30", None]),
    "battery_swap": (25, "换电柜·{road}（演示）", [("ebike_charging", 0.2, 0.6)], ["24/7", None]),
    "water_point": (15, "直饮水点·{road}（演示）", [("hot_water", 0.3, 0.6)], ["24/7", "07:00-21:00", None]),
    "charging": (12, "电动车充电桩·{road}（演示）", [("battery_swap", 0.1, 0.5)], ["24/7", "06:00-23:00"]),
}
ACCESS_BY_KIND = {"rest_station": ["workers", "public"], "battery_swap": ["customers"]}


def generate(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for kind, (count, pattern, amenity_plan, hours_choices) in PLAN.items():
        for i in range(1, count + 1):
            # Denser near the centre, like a real network: ~4 km standard deviation.
            lat = CENTRE[0] + rng.gauss(0, 0.035)
            lng = CENTRE[1] + rng.gauss(0, 0.040)
            g_lat, g_lng = wgs84_to_gcj02(lat, lng)
            road = rng.choice(ROADS)
            amenities = []
            for amenity, p_yes, p_known in amenity_plan:
                if rng.random() < p_known:
                    amenities.append(amenity if rng.random() < p_yes else f"{amenity}=no")
            rows.append({
                "source_id": f"{kind}-{i:03d}",
                "name": pattern.format(road=road),
                "kind": kind,
                "lat": f"{g_lat:.6f}",
                "lng": f"{g_lng:.6f}",
                "amenities": ";".join(amenities),
                "opening_hours": rng.choice(hours_choices) or "",
                "address": f"株洲市{rng.choice(DISTRICTS)}{road}{rng.randint(1, 600)}号（演示地址）",
                "operator": "演示数据 Demo data" if kind != "rest_station" else "株洲市总工会（演示）",
                "access": rng.choice(ACCESS_BY_KIND.get(kind, ["public"])),
                # what a cabinet reports through its operator's feed (demo values)
                "batteries_available": str(rng.randint(0, 12)) if kind == "battery_swap" else "",
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "zhuzhou_demo.csv"))
    args = parser.parse_args()
    rows = generate(args.seed)
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} demo stations to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
