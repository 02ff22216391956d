"""The MQTT side of the sensors: ``flask --app wsgi sensors listen`` (paho-mqtt 2.1).

Subscribes to ``yizhan/sensors/+/reading`` with QoS 1 in a persistent session (a fixed client id,
clean start off, a session that outlives the connection), so the broker keeps the readings that
arrive while the listener is away — up to its ``max_queued_messages`` per client (Mosquitto's
default is 1,000, i.e. 30 s of 2,000 devices: deploy/mosquitto.conf raises it; beyond it the broker
drops readings and says so only in its own log).

paho's network thread only puts each message in a queue. ``run`` takes them out in batches (up to
``BATCH_MAX`` messages, or what arrived within ``BATCH_WINDOW_S`` of the first) and applies a batch
in ONE transaction, a savepoint per reading (``Sensors.record_many``), commits, and only then
acknowledges its messages, in the order they came (manual acks). A crash or a stop before the
commit means a redelivery, and the (device, ts) primary key makes that a no-op: at least once in,
exactly once applied.

MQTT 5 is used for its Receive Maximum: the broker sends at most that many unacknowledged messages
at a time. Mosquitto's default for clients that do not say (and for every MQTT 3.1.1 client) is
``max_inflight_messages`` = 20, which would cap a batch at 20 messages; ``RECEIVE_MAXIMUM`` lets a
whole batch be in flight while the previous one commits.

A bad message (topic, JSON, values, time, unknown device, flood) is logged and counted by reason,
acknowledged and dropped: redelivering it would not make it better. A database error is not the
messages' fault: the batch is retried (with backoff) until it commits or the listener is stopped,
and none of it is acknowledged before. paho reconnects on its own (1 s, doubling to 30 s).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.exc import SQLAlchemyError

from app.ops.sensors import SUBSCRIPTION, Recorded, Rejected, Sensors, device_in_topic, parse_reading

log = logging.getLogger("yizhan.sensors")

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_CLIENT_ID = "yizhan-sensors"
KEEPALIVE_S = 30
RECONNECT_DELAY_S = (1, 30)
STORE_RETRY_S = (0.2, 5.0)
STATS_EVERY_S = 60.0
BATCH_MAX = 200
BATCH_WINDOW_S = 0.03
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may send us: several batches
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps the session (and its readings) a week without us
HEARTBEAT_EVERY_S = 10.0  # how often the listener says how it is (app.metrics reads it)


PASSWORD_ENV = "YIZHAN_MQTT_PASSWORD"  # never on the command line, where `ps` shows it
CA_ENV = "YIZHAN_MQTT_CA"  # a CA bundle for mqtts:// (default: the system's)


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how the listener proves who it is: ``mqtt[s]://[user@]host[:port]``,
    the password from YIZHAN_MQTT_PASSWORD. The listener must log in wherever devices could
    otherwise publish as one another (the broker's password file and ACLs guard the topics)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    def secure(self, client: mqtt.Client) -> None:
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_file)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.username + '@' if self.username else ''}{self.host}:{self.port}"


def broker_address(url: str, environ=os.environ) -> Broker:
    """The Broker of ``mqtt[s]://[user@]host[:port]``; a password in the URL is refused (it would
    show in `ps` and in shell histories)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"the broker must be given as mqtt[s]://[user@]host[:port], not {url!r}")
    if parts.password is not None:
        raise ValueError(f"put the broker's password in {PASSWORD_ENV}, not in the URL")
    tls = parts.scheme == "mqtts"
    username = unquote(parts.username) if parts.username else None
    return Broker(parts.hostname, parts.port or (8883 if tls else 1883), tls, username,
                  environ.get(PASSWORD_ENV) if username else None, environ.get(CA_ENV) or None)


def forget_session(broker: str, client_id: str) -> None:
    """Make the broker drop a listener's persistent session (and the readings it keeps for it)."""
    where = broker_address(broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    where.secure(client)
    ending = Properties(PacketTypes.CONNECT)
    ending.SessionExpiryInterval = 0
    try:
        client.connect(where.host, where.port, clean_start=True, properties=ending)
        client.disconnect()
    except OSError:
        pass  # no broker there: nothing kept


@dataclass
class Stats:
    applied: int = 0
    duplicates: int = 0
    opened: int = 0  # cleaning work orders opened
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    store_errors: int = 0
    connects: int = 0
    batches: int = 0

    def line(self) -> str:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())) or "none"
        return (f"applied {self.applied}, duplicates {self.duplicates}, cleaning work orders opened {self.opened}, "
                f"rejected: {refused}; store errors {self.store_errors}; connections {self.connects}; "
                f"batches {self.batches}")


@dataclass(frozen=True)
class _Message:
    connection: int  # which connection brought it: an ack is only valid on that one
    mid: int
    qos: int
    topic: str
    payload: bytes


class Listener:
    """Readings from the broker into ``Sensors.record_many``. ``run`` blocks until ``stop()``."""

    def __init__(self, ops, broker: str = DEFAULT_BROKER, client_id: str = DEFAULT_CLIENT_ID,
                 batch_max: int = BATCH_MAX, batch_window_s: float = BATCH_WINDOW_S, heartbeat=None):
        """``heartbeat``: called with ``state()`` every HEARTBEAT_EVERY_S and once when stopping
        (app.metrics.listener_heartbeat keeps it in Redis for the /metrics scrape)."""
        self._heartbeat = heartbeat
        self._sensors = Sensors(ops)
        self._broker = broker_address(broker)
        self._host, self._port = self._broker.host, self._broker.port
        self._batch_max, self._batch_window_s = batch_max, batch_window_s
        self._stopping = threading.Event()
        self._inbox: queue.Queue[_Message] = queue.Queue()
        self._connection = 0  # counts connections; paho's thread bumps it, run() reads it
        self.connected = threading.Event()  # set while subscribed
        self.stats = Stats()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                   manual_ack=True)
        self._broker.secure(self._client)
        self._client.reconnect_delay_set(*RECONNECT_DELAY_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- paho's network thread: nothing slow here ----------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self._host, self._port, reason_code)
            return
        self._connection += 1
        self.stats.connects += 1
        client.subscribe(SUBSCRIPTION, qos=1)  # ``connected`` waits for the broker's SUBACK
        log.info("connected to %s:%s (session kept: %s)", self._host, self._port, flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if any(code.is_failure for code in reason_codes):
            log.error("broker %s:%s refused the subscription to %s: %s", self._host, self._port, SUBSCRIPTION,
                      reason_codes)
            return
        # Only now does the broker route readings to us: a reading published between the CONNACK
        # and the SUBACK of a new session would not be ours.
        self.connected.set()
        log.info("listening on %s:%s for %s", self._host, self._port, SUBSCRIPTION)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message):
        self._inbox.put(_Message(self._connection, message.mid, message.qos, message.topic, message.payload))

    # -- the applying thread ------------------------------------------------------------

    def run(self) -> None:
        session = Properties(PacketTypes.CONNECT)
        session.ReceiveMaximum = RECEIVE_MAXIMUM
        session.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self._host, self._port, keepalive=KEEPALIVE_S, clean_start=False,
                                   properties=session)
        self._client.loop_start()  # its thread connects, and reconnects whenever the broker goes away
        last = beat = time.monotonic()
        self._beat()
        try:
            while not self._stopping.is_set():
                batch = self._next_batch()
                if batch:
                    self._apply(batch)
                if time.monotonic() - last >= STATS_EVERY_S:
                    log.info("%s", self.stats.line())
                    last = time.monotonic()
                if time.monotonic() - beat >= HEARTBEAT_EVERY_S:
                    self._beat()
                    beat = time.monotonic()
        finally:
            self._client.disconnect()
            self._client.loop_stop()
            self.connected.clear()
            self._beat(stopped=True)
            log.info("stopped: %s", self.stats.line())

    def stop(self) -> None:
        self._stopping.set()

    def state(self, stopped: bool = False) -> dict:
        """What the heartbeat carries: connected (subscribed) or not, and the running counts."""
        return {"connected": self.connected.is_set() and not stopped, "stopped": stopped, "at": time.time(),
                "applied": self.stats.applied, "duplicates": self.stats.duplicates,
                "rejected": sum(self.stats.rejected.values()), "store_errors": self.stats.store_errors}

    def _beat(self, stopped: bool = False) -> None:
        if self._heartbeat is None:
            return
        try:
            self._heartbeat(self.state(stopped))
        except Exception as exc:  # Redis away: the readings matter more than the report on them
            log.warning("heartbeat failed (%s)", type(exc).__name__)

    def _next_batch(self) -> list[_Message]:
        """The next message (waiting up to 0.5 s, so a stop is noticed) and whatever follows it
        within the batch window, up to the batch size."""
        try:
            batch = [self._inbox.get(timeout=0.5)]
        except queue.Empty:
            return []
        until = time.monotonic() + self._batch_window_s
        while len(batch) < self._batch_max:
            left = until - time.monotonic()
            try:
                batch.append(self._inbox.get(timeout=left) if left > 0 else self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _apply(self, batch: list[_Message]) -> None:
        """Apply a batch, commit, then acknowledge it; not acknowledged at all when stopped while
        the store is failing (the broker gives the messages to the next session)."""
        readings, places = [], []
        for message in batch:
            try:
                readings.append((device_in_topic(message.topic), parse_reading(message.payload)))
                places.append(message)
            except Rejected as exc:
                self._rejected(exc, message.topic)
        answers = self._store(readings) if readings else []
        if answers is None:
            return
        for message, done in zip(places, answers):
            if isinstance(done, Rejected):
                self._rejected(done, message.topic)
            elif isinstance(done, Recorded) and done.applied:
                self.stats.applied += 1
                self.stats.opened += done.opened
            else:
                self.stats.duplicates += 1
        self.stats.batches += 1
        for message in batch:
            # A message of an earlier connection comes again on this one (the session keeps what was
            # not acknowledged): that copy is acknowledged once applied (a duplicate by then).
            if message.connection == self._connection:
                self._client.ack(message.mid, message.qos)

    def _store(self, readings) -> list | None:
        """``record_many``, retried with backoff while the store fails; None when stopped first."""
        pause = STORE_RETRY_S[0]
        while True:
            try:
                return self._sensors.record_many(readings)
            except SQLAlchemyError as exc:
                self.stats.store_errors += 1
                log.error("could not store %d readings (%s); retrying in %.1f s", len(readings),
                          type(exc).__name__, pause)
                if self._stopping.wait(pause):
                    return None
                pause = min(pause * 2, STORE_RETRY_S[1])

    def _rejected(self, exc: Rejected, topic: str) -> None:
        count = self.stats.rejected[exc.reason] = self.stats.rejected[exc.reason] + 1
        # A flood or a broken device sends thousands: log the 1st, 2nd, 4th, 8th... of each reason.
        if count & (count - 1) == 0:
            log.warning("rejected a reading on %s (%s: %s); %d of this kind so far", topic[:120], exc.reason,
                        exc.message, count)
