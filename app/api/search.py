"""/api/v1/search: stations, streets and places by name (characters, pinyin, initials)."""
from __future__ import annotations

from app.api import bodies, serialize
from app.api.args import SearchArgs
from app.api.blueprint import bp, store
from app.api.contract import STORE_DOWN, endpoint
from app.search.service import search as run_search


@endpoint(bp, "/search", query=SearchArgs, body=bodies.SearchAnswer, errors=STORE_DOWN,
          summary="Search stations (name, address, operator), streets and places by name.")
def search(args: SearchArgs):
    """Chinese characters (人民 finds 人民路 and 人民广场), full pinyin with or without spaces or tones
    (`renminlu`, `rénmín lù`), initials (`rml`) and mixes (`人民g`); full-width input is read as
    half-width. Closed and removed stations are never suggested. A single letter or digit answers
    an empty list."""
    near = args.near_wgs84
    hits = run_search(store(), args.q, near, args.limit)
    return serialize.search_results(args.q, hits, args.answer_in)
