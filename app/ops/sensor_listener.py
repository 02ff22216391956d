"""The MQTT side of the sensors: ``flask --app wsgi sensors listen`` (paho-mqtt 2.1).

Subscribes to ``yizhan/sensors/+/reading`` with QoS 1 in a persistent session (a fixed client id,
clean_session false), so the broker keeps the readings that arrive while the listener is away
(Mosquitto's ``max_queued_messages``, 1,000 by default, bounds that backlog). Each message is
acknowledged only after its reading is committed (manual acks): a crash before the commit means a
redelivery, and the (device, ts) primary key makes the redelivery a no-op — at least once in,
exactly once applied. paho reconnects on its own (1 s, doubling to 30 s) when the broker goes away.

A bad message (topic, JSON, values, time, unknown device, flood) is logged and counted by reason,
acknowledged and dropped: redelivering it would not make it better. A database error is not the
message's fault: it is retried (with backoff) until it commits or the listener is stopped, and is
never acknowledged before.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from sqlalchemy.exc import SQLAlchemyError

from app.ops.sensors import SUBSCRIPTION, Rejected, Sensors, device_in_topic, parse_reading

log = logging.getLogger("yizhan.sensors")

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_CLIENT_ID = "yizhan-sensors"
KEEPALIVE_S = 30
RECONNECT_DELAY_S = (1, 30)
STORE_RETRY_S = (0.2, 5.0)
STATS_EVERY_S = 60.0


def broker_address(url: str) -> tuple[str, int]:
    """(host, port) of ``mqtt://host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"the broker must be given as mqtt://host[:port], not {url!r}")
    return parts.hostname, parts.port or 1883


@dataclass
class Stats:
    applied: int = 0
    duplicates: int = 0
    opened: int = 0  # cleaning work orders opened
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    store_errors: int = 0
    connects: int = 0

    def line(self) -> str:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        return (f"applied {self.applied}, duplicates {self.duplicates}, cleaning work orders opened {self.opened}, "
                f"rejected: {refused}; store errors {self.store_errors}; connections {self.connects}")


class Listener:
    """Readings from the broker into ``Sensors.record``. ``run`` blocks until ``stop()``."""

    def __init__(self, ops, broker: str = DEFAULT_BROKER, client_id: str = DEFAULT_CLIENT_ID):
        self._sensors = Sensors(ops)
        self._host, self._port = broker_address(broker)
        self._stopping = threading.Event()
        self.connected = threading.Event()  # set while subscribed
        self.stats = Stats()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                                   protocol=mqtt.MQTTv311, manual_ack=True)
        self._client.reconnect_delay_set(*RECONNECT_DELAY_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self._host, self._port, reason_code)
            return
        self.stats.connects += 1
        client.subscribe(SUBSCRIPTION, qos=1)
        self.connected.set()
        log.info("listening on %s:%s for %s (session kept: %s)", self._host, self._port, SUBSCRIPTION,
                 flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message):
        if self.handle(message.topic, message.payload):
            client.ack(message.mid, message.qos)

    def handle(self, topic: str, payload: bytes) -> bool:
        """Apply one message and count what happened; retry the store until it answers. False when
        stopped first (the message stays unacknowledged)."""
        try:
            device_id = device_in_topic(topic)
            reading = parse_reading(payload)
        except Rejected as exc:
            self._rejected(exc, topic)
            return True
        pause = STORE_RETRY_S[0]
        while True:
            try:
                done = self._sensors.record(device_id, reading)
            except Rejected as exc:
                self._rejected(exc, topic)
                return True
            except SQLAlchemyError as exc:
                self.stats.store_errors += 1
                log.error("could not store a reading of %s (%s); retrying in %.1f s", device_id,
                          type(exc).__name__, pause)
                if self._stopping.wait(pause):
                    return False  # not acknowledged: the broker gives it to the next session
                pause = min(pause * 2, STORE_RETRY_S[1])
                continue
            if done.applied:
                self.stats.applied += 1
                self.stats.opened += done.opened
            else:
                self.stats.duplicates += 1
            return True

    def _rejected(self, exc: Rejected, topic: str) -> None:
        count = self.stats.rejected[exc.reason] = self.stats.rejected[exc.reason] + 1
        # A flood or a broken device sends thousands: log the 1st, 2nd, 4th, 8th... of each reason.
        if count & (count - 1) == 0:
            log.warning("rejected a reading on %s (%s: %s); %d of this kind so far", topic[:120], exc.reason,
                        exc.message, count)

    def run(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S)
        self._client.loop_start()  # its thread connects, and reconnects whenever the broker goes away
        last = time.monotonic()
        try:
            while not self._stopping.wait(1.0):
                if time.monotonic() - last >= STATS_EVERY_S:
                    log.info("%s", self.stats.line())
                    last = time.monotonic()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            self.connected.clear()
            log.info("stopped: %s", self.stats.line())

    def stop(self) -> None:
        self._stopping.set()
