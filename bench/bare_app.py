"""The floor for bench/throughput.py: a Flask view with no database, no hours, no geometry.

It answers ``GET /`` with a 10-item JSON list shaped like a nearest answer, served by
gunicorn exactly as the real app is, so "nearest as % of bare" shows what the station
search costs on top of Flask, gunicorn and HTTP.
"""
from flask import Flask, jsonify

app = Flask(__name__)

TEN_ITEMS = [
    {"id": i, "name": f"站点 {i}", "kind": "toilet", "lat": 27.83 + i / 1000, "lng": 113.15,
     "distance_m": round(110.82 * i, 1), "open_state": "open", "next_change": None}
    for i in range(1, 11)
]


@app.get("/")
def ten_items():
    return jsonify(results=TEN_ITEMS)
