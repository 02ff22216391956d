"""A seeded synthetic city as a real .osm.pbf, for network benchmarks.

A jittered street grid (default 320 x 320 = 102,400 junctions, 60 m blocks, about
19 km across) with a river running north-south that only a few bridges cross,
some missing street pieces, footpaths through blocks, one-way streets and a
motorway ring nobody may walk or ride. Roughly the street density of a dense
Chinese district, at city scale.

    python bench/synthetic_city.py --size 320 --out bench/out/city.osm.pbf
"""
from __future__ import annotations

import argparse
import os
import random

import osmium
from osmium.osm.mutable import Node, Way

LAT0, LNG0 = 27.75, 113.05  # south-west corner, Zhuzhou-like latitude
BLOCK_M = 60.0
M_PER_DEG_LAT = 110_815.0
M_PER_DEG_LNG = 98_512.0


# Words Chinese street names are made of (for the search benchmark): 40 x 40 x 2 names.
NAME_WORDS = ("人民", "解放", "建设", "中山", "长沙", "重庆", "芙蓉", "天元", "荷塘", "石峰", "芦淞", "神农", "湘江",
              "株洲", "新华", "红旗", "东风", "胜利", "和平", "友谊", "五一", "八一", "黄河", "长江", "珠江", "朝阳",
              "光明", "幸福", "文化", "体育", "车站", "建宁", "桂花", "茶陵", "炎帝", "响石", "铁道", "钻石", "栗雨",
              "泰山")
DIRECTIONS = ("东", "西", "南", "北", "中", "新", "老", "前", "后", "上", "下", "内", "外", "大", "小", "一", "二",
              "三", "四", "五", "六", "七", "八", "九", "十", "横", "纵", "环", "滨江", "沿河", "望江", "青年", "学府",
              "工业", "商业", "金山", "银山", "花园", "凤凰", "龙泉")


def street_name(n: int, suffix: str) -> str:
    """A Chinese street name for row or column ``n`` (路 for rows, 街 for columns)."""
    return NAME_WORDS[n % len(NAME_WORDS)] + DIRECTIONS[n // len(NAME_WORDS) % len(DIRECTIONS)] + suffix


def write_city(path: str, size: int = 320, seed: int = 7) -> dict:
    rng = random.Random(seed)
    river_col = size // 2
    bridges = set(rng.sample(range(size), max(3, size // 40)))

    def node_id(i, j):
        return 1 + i * size + j

    ways = []
    way_id = 1
    # east-west streets (rows): broken at the river except at bridges
    for i in range(size):
        oneway = rng.random() < 0.15
        run = [node_id(i, 0)]
        for j in range(1, size):
            crossing = j == river_col + 1 and i not in bridges
            missing = rng.random() < 0.03
            if crossing or missing:
                if len(run) > 1:
                    ways.append((way_id, run, {"highway": "residential", "name": street_name(i, "路"),
                                               **({"oneway": "yes"} if oneway else {})}))
                    way_id += 1
                run = [node_id(i, j)]
            else:
                run.append(node_id(i, j))
        if len(run) > 1:
            ways.append((way_id, run, {"highway": "residential", "name": street_name(i, "路"),
                                       **({"oneway": "yes"} if oneway else {})}))
            way_id += 1
    # north-south streets (columns); the river column has no street
    for j in range(size):
        if j == river_col:
            continue
        tag = {"highway": "tertiary" if j % 10 == 0 else "residential", "name": street_name(j, "街")}
        run = [node_id(0, j)]
        for i in range(1, size):
            if rng.random() < 0.03:
                if len(run) > 1:
                    ways.append((way_id, run, tag))
                    way_id += 1
                run = [node_id(i, j)]
            else:
                run.append(node_id(i, j))
        if len(run) > 1:
            ways.append((way_id, run, tag))
            way_id += 1
    # diagonal footpaths through some blocks
    for _ in range(size * size // 20):
        i, j = rng.randrange(size - 1), rng.randrange(size - 1)
        if j == river_col or j + 1 == river_col:
            continue
        ways.append((way_id, [node_id(i, j), node_id(i + 1, j + 1)], {"highway": "footway"}))
        way_id += 1
    # a motorway along the southern edge
    ways.append((way_id, [node_id(0, j) for j in range(0, size, 5)], {"highway": "motorway"}))

    jitter = BLOCK_M * 0.15
    with osmium.SimpleWriter(path, overwrite=True) as w:
        for i in range(size):
            for j in range(size):
                y = i * BLOCK_M + rng.uniform(-jitter, jitter)
                x = j * BLOCK_M + rng.uniform(-jitter, jitter)
                w.add_node(Node(id=node_id(i, j), location=(LNG0 + x / M_PER_DEG_LNG, LAT0 + y / M_PER_DEG_LAT)))
        for wid, nodes, tags in ways:
            w.add_way(Way(id=wid, nodes=nodes, tags=tags))
    span = size * BLOCK_M
    return {
        "nodes": size * size, "ways": len(ways),
        "south": LAT0, "west": LNG0, "north": LAT0 + span / M_PER_DEG_LAT, "east": LNG0 + span / M_PER_DEG_LNG,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out", "city.osm.pbf"))
    args = parser.parse_args()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    print(write_city(args.out, args.size, args.seed))


if __name__ == "__main__":
    main()
