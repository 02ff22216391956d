"""Locust users for `make bench-load` (bench/load.py starts locust with this file; not run alone).

Each user is one phone: its own address (X-Forwarded-For, which the app trusts with
YIZHAN_PROXY_HOPS=1, as behind nginx), its own cookies (so its own rating device, and the
"just wrote" cookie that sends its next reads to the primary), asking at random moments at a
set mean rate: independent phones, so arrivals are a Poisson stream. (A constant pace per user
would lock the users in step, every one of them asking in the same instant each period: bursts
of a whole second's requests at once, which no crowd of phones makes.)
The mix, by task weight: 80 % nearest, 10 % map area (bbox), 5 % service circle, 3 % problem
report (Open311, the path a client application posts to, with its api_key), 2 % rating.

Everything the users need (the city's bounds, station ids, points on the road network, the
api keys, the rate per user) comes from the JSON file named by YIZHAN_LOAD_SPEC.
"""
from __future__ import annotations

import json
import os
import random

import gevent
from locust import FastHttpUser, task

with open(os.environ["YIZHAN_LOAD_SPEC"]) as _fh:
    SPEC = json.load(_fh)
SOUTH, WEST, NORTH, EAST = SPEC["bounds"]
# A phone's map at street zoom (about 1.1 km x 1.5 km at this latitude).
BOX_DLAT, BOX_DLNG = 0.010, 0.015
CATEGORIES = ("dirty", "no_paper", "no_water", "facility_broken")
RATING_TAGS = ("clean", "smelly", "no_paper")


RATE = SPEC["rate_per_user"]


class Phone(FastHttpUser):
    def wait_time(self):
        # Exponential gaps after each answer: the answer's own time (milliseconds against gaps of
        # seconds) lowers the rate a little; the achieved rate is what the summary reports.
        return self.rng.expovariate(RATE)

    def on_start(self):
        self.rng = random.Random()
        gevent.sleep(self.rng.expovariate(RATE))  # users started together do not ask together
        # 10.0.0.0/8: 16 M addresses, so the per-address limits count each phone, as in production.
        self.headers = {"X-Forwarded-For": f"10.{self.rng.randrange(256)}.{self.rng.randrange(256)}."
                                           f"{self.rng.randrange(1, 255)}",
                        "Accept-Encoding": "gzip"}
        self.api_key = self.rng.choice(SPEC["open311_keys"])

    def point(self):
        return self.rng.uniform(SOUTH, NORTH), self.rng.uniform(WEST, EAST)

    def station(self):
        return self.rng.randint(*SPEC["station_ids"])

    @task(80)
    def nearest(self):
        lat, lng = self.point()
        self.client.get(f"/api/v1/stations/nearest?lat={lat:.6f}&lng={lng:.6f}", headers=self.headers,
                        name="nearest")

    @task(10)
    def map_area(self):
        lat = self.rng.uniform(SOUTH, NORTH - BOX_DLAT)
        lng = self.rng.uniform(WEST, EAST - BOX_DLNG)
        self.client.get(f"/api/v1/stations?bbox={lng:.6f},{lat:.6f},{lng + BOX_DLNG:.6f},{lat + BOX_DLAT:.6f}",
                        headers=self.headers, name="bbox")

    @task(5)
    def service_circle(self):
        lat, lng = self.rng.choice(SPEC["network_points"])
        mode = "walk" if self.rng.random() < 0.5 else "ebike"
        self.client.get(f"/api/v1/service-circle?lat={lat:.6f}&lng={lng:.6f}&minutes=15&mode={mode}",
                        headers=self.headers, name="service_circle")

    @task(3)
    def report(self):
        form = {"api_key": self.api_key, "service_code": self.rng.choice(CATEGORIES),
                "attribute[station_id]": str(self.station()), "description": "负载测试"}
        self.client.post("/open311/v2/requests.json", data=form, headers=self.headers, name="report")

    @task(2)
    def rating(self):
        body = {"stars": self.rng.randint(1, 5), "tags": [self.rng.choice(RATING_TAGS)]}
        self.client.post(f"/api/v1/stations/{self.station()}/ratings", json=body, headers=self.headers,
                         name="rating")
