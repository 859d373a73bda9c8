"""100,000 random and mutated payloads through the real ingest (``python -m cloud ingest``,
real Mosquitto and InfluxDB): it does not crash, its memory stays flat, and every payload
is accounted for — stored in InfluxDB or dead-lettered with a reason, nothing lost and
nothing dead-lettered twice.

Seeded: ``HINODE_FLOOD_SEED=<n>`` reproduces a run (the seed is in every failure message).
"""

from __future__ import annotations

import os
import json
import random
import signal
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
import yaml

from hinode import contract
from hinode.contract import ContractError, decode_telemetry
from tests.faults.helpers import IngestProcess, wait_until
from tests.fuzz.helpers import base_envelope, dumps, flood_payload, rare_payload

pytestmark = pytest.mark.timeout(240)

TOTAL = int(os.environ.get("HINODE_FLOOD_TOTAL", "100000"))
SEED = int(os.environ.get("HINODE_FLOOD_SEED", "20261123"))
RARE = {"nested": 2, "surrogate": 2, "oversized": 5}   # few: see test_ingest_poison.py (ts 10**400 only there)
MEASUREMENTS = ", ".join(f'"{k.value}"' for k in contract.DeviceKind)
RSS_GROWTH_LIMIT_MB = 30


@dataclass(slots=True)
class Sent:
    category: str
    topic: str
    payload: bytes
    points: frozenset | None      # (kind, device, ts) it would store; None: the contract refuses it

    @property
    def letter_key(self) -> tuple[str, str]:
        """How its dead letter shows it: the topic and the first 4 KiB decoded with replacement."""
        return self.topic, self.payload[:4096].decode("utf-8", errors="replace")

    @property
    def personal_letter_key(self) -> tuple[str, str]:
        """How a personal dead letter shows it: no payload, only its size."""
        return self.topic, f"<{len(self.payload)} bytes>"


def expected_points(topic: str, payload: bytes) -> frozenset | None:
    try:
        envelope = decode_telemetry(payload, topic)
    except (ContractError, RecursionError):      # RecursionError: see test_contract_fuzz
        return None
    if contract.is_personal(envelope.kind):      # a personal kind on the general topic is refused
        return None
    return frozenset((envelope.kind.value, envelope.device, r.ts) for r in envelope.readings)


def build_payloads(seed: int, base_ts: int):
    """Seeded payloads (a generator: publishing starts at once); storable ones never share an
    InfluxDB point, so each is countable."""
    rng = random.Random(seed)
    rare_at = {rng.randrange(TOTAL): kind for kind, count in RARE.items() for _ in range(count)}
    taken: set = set()
    for i in range(TOTAL):
        if i in rare_at:
            topic, payload = rare_payload(rare_at[i], rng, base_ts + i)
            yield Sent(rare_at[i], topic, payload, expected_points(topic, payload))
            continue
        category, topic, payload = flood_payload(rng, base_ts + i)
        points = expected_points(topic, payload)
        fallback = 0
        while points is not None and not points.isdisjoint(taken):
            # a mutation moved it onto another envelope's point: send a plain one at a free ts instead
            fallback += 1
            envelope = base_envelope(rng, base_ts - 1_000_000 * fallback - i)
            category, topic = "valid", contract.telemetry_topic(envelope["site"], envelope["agent"])
            payload = dumps(envelope)
            points = expected_points(topic, payload)
        if points is not None:
            taken |= points
        yield Sent(category, topic, payload, points)


class LetterBox:
    """Every dead letter: (original topic, payload text) counted, reasons by code."""

    def __init__(self, port: int):
        self.keys: Counter = Counter()
        self.conflicts: Counter = Counter()   # (topic, site, device, seq) of envelopes stored but for a field
        self.codes: Counter = Counter()
        self.bad_letters: list[str] = []
        self.count = 0
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"letters-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(contract.DEAD_LETTER_FILTER, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(5), "dead-letter subscriber did not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        letter = contract.DeadLetter.model_validate_json(msg.payload)
        code = letter.reason.split(":", 1)[0]
        with self._lock:
            self.count += 1
            if letter.personal:
                assert letter.payload == "", "a personal dead letter carried its payload"
                self.keys[(letter.topic, f"<{letter.payload_bytes} bytes>")] += 1
            elif code == "field_type_conflict":
                # Only the refused readings travel; the rest of the envelope was stored.
                refused = json.loads(letter.payload)
                self.conflicts[(letter.topic, refused["site"], refused["device"], refused["seq"])] += 1
            else:
                self.keys[(letter.topic, letter.payload)] += 1
            self.codes[code] += 1
            if not letter.reason.strip() or msg.topic != contract.dead_letter_topic(code):
                self.bad_letters.append(f"{msg.topic}: {letter.reason!r}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def stuck_ingest_report(ingest) -> str:
    """The ingest's log tail and every thread's stack (SIGUSR1, see run_ingest): where it waits."""
    mark = len(ingest.log_text())
    if ingest.proc.poll() is None:
        os.kill(ingest.pid, signal.SIGUSR1)
        time.sleep(1.0)             # a failure report only: time for the ingest to write its stacks
    text = ingest.log_text()
    return f"{text[max(0, mark - 1500):mark]}\n--- ingest threads on SIGUSR1 ---\n{text[mark:][-6000:]}"


def stored_points(influx) -> set:
    result = influx.query(f'SELECT "seq" FROM {MEASUREMENTS} GROUP BY "device"', db="hinode")["results"][0]
    return {(s["name"], s["tags"]["device"], row[0]) for s in result.get("series", []) for row in s["values"]}


def stored_count(influx) -> int:
    result = influx.query(f'SELECT count("seq") FROM {MEASUREMENTS}', db="hinode")["results"][0]
    return sum(series["values"][0][1] for series in result.get("series", []))


def account(sent: list[Sent], letters: Counter, present: set) -> dict:
    """Match every payload to a dead letter or to its points in InfluxDB."""
    letters = Counter(letters)
    dead = stored = 0
    unaccounted: list[Sent] = []
    stored_candidates = []
    for item in sent:
        if item.points is not None and item.points <= present:
            stored_candidates.append(item)
        elif letters[item.letter_key] > 0:
            letters[item.letter_key] -= 1
            dead += 1
        elif letters[item.personal_letter_key] > 0:
            letters[item.personal_letter_key] -= 1
            dead += 1
        else:
            unaccounted.append(item)
    for item in stored_candidates:
        if letters[item.letter_key] > 0:      # e.g. partly written, then refused: dead-lettered
            letters[item.letter_key] -= 1
            dead += 1
        else:
            stored += 1
    known = set().union(*(item.points for item in sent if item.points))
    return {"stored": stored, "dead": dead, "unaccounted": unaccounted, "spurious_letters": +letters,
            "unknown_points": len(present - known)}


def describe(result: dict | None) -> str:
    if not result:
        return "not accounted yet"
    missing = result["unaccounted"]
    sample = [(item.category, item.topic, item.payload[:160], sorted(item.points or ())[:2]) for item in missing[:3]]
    return (f"stored {result['stored']}, dead {result['dead']}, unaccounted {len(missing)} "
            f"{dict(Counter(item.category for item in missing))}, e.g. {sample}")


def test_a_flood_of_mutated_payloads_is_stored_or_dead_lettered_with_flat_memory(broker, influx, tmp_path):
    started = time.monotonic()
    sent: list[Sent] = []
    seed_note = f"(HINODE_FLOOD_SEED={SEED})"
    config = tmp_path / "cloud.yaml"
    config.write_text(yaml.safe_dump({"mqtt": {"host": "127.0.0.1", "port": broker.port,
                                               "client_id": "ingest-flood", "keepalive_s": 30},
                                      "influx": {"url": influx.url, "database": "hinode"},
                                      "ingest": {"metrics_listen": "127.0.0.1:0"}}))
    ingest = IngestProcess(config, tmp_path / "ingest.log").start()
    letters = LetterBox(broker.port)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flood-publisher", protocol=mqtt.MQTTv5)
    publisher.max_inflight_messages_set(100)   # the broker's receive maximum (max_inflight_messages)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    samples: list[tuple[float, int, float]] = []       # (seconds, payloads published or dead letters, RSS MB)
    try:
        samples.append((0.0, 0, rss_mb(ingest.pid)))
        outstanding: deque = deque()
        for index, item in enumerate(build_payloads(SEED, time.time_ns() // 1_000_000 - 300_000)):
            sent.append(item)
            outstanding.append(publisher.publish(item.topic, item.payload, qos=1))
            if len(outstanding) > 20_000:     # paho has 65,535 packet ids: let the broker catch up
                outstanding.popleft().wait_for_publish(60)
            if index % 5000 == 0:
                samples.append((time.monotonic() - started, index, rss_mb(ingest.pid)))
        for info in outstanding:
            info.wait_for_publish(60)
        expected_dead = sum(1 for item in sent if item.points is None)
        progress: dict = {}

        def sample() -> None:
            samples.append((time.monotonic() - started, letters.count, rss_mb(ingest.pid)))
            assert ingest.proc.poll() is None, f"ingest died {seed_note}:\n{ingest.log_since_start()[-3000:]}"

        def quiet():
            """Dead letters and stored points unchanged for 2 s (cheap), then the full accounting."""
            sample()
            mark = (letters.count, stored_count(influx))
            time.sleep(2.0)                 # a quiet window: nothing changing for 2 s is the condition
            sample()
            if letters.count < expected_dead or (letters.count, stored_count(influx)) != mark:
                return None
            progress["last"] = account(sent, letters.keys, stored_points(influx))
            return progress["last"] if not progress["last"]["unaccounted"] else None

        result = wait_until(quiet, f"every payload stored or dead-lettered {seed_note}", 120, interval=0.5,
                            context=lambda: f"\ndead letters {letters.count} of at least {expected_dead}; "
                            f"codes {dict(letters.codes)}; {describe(progress.get('last'))}\n"
                            f"seconds:letters:MB {' '.join(f'{t:.0f}:{n}:{mb:.0f}' for t, n, mb in samples[-40::2])}\n"
                            f"{stuck_ingest_report(ingest)}")
        time.sleep(1.0)                                 # late duplicates would show up now
        result = account(sent, letters.keys, stored_points(influx))
        assert ingest.stop() == 0, f"ingest did not stop cleanly {seed_note}"
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        letters.close()
        ingest.stop()
    categories = Counter(item.category for item in sent)
    print(f"\nflood {seed_note}: {TOTAL} payloads {dict(categories)} in {time.monotonic() - started:.1f} s; "
          f"stored {result['stored']}, dead-lettered {result['dead']} {dict(letters.codes)}; RSS MB "
          f"start {samples[0][2]:.1f} middle {samples[len(samples) // 2][2]:.1f} end {samples[-1][2]:.1f}; "
          f"seconds:MB {' '.join(f'{t:.0f}:{mb:.0f}' for t, _, mb in samples[::max(1, len(samples) // 15)])}")

    assert result["stored"] + result["dead"] == TOTAL
    assert result["spurious_letters"] == Counter(), f"dead letters no payload explains {seed_note}"
    stored_envelopes = Counter()
    for item in sent:
        if item.points is not None:
            envelope = json.loads(item.payload)
            stored_envelopes[(item.topic, envelope["site"], envelope["device"], envelope["seq"])] += 1
    unexplained = letters.conflicts - stored_envelopes
    assert unexplained == Counter(), f"field_type_conflict letters for envelopes never sent {seed_note}"
    assert result["unknown_points"] == 0, f"points in InfluxDB that no payload holds {seed_note}"
    assert letters.bad_letters == [], letters.bad_letters[:5]
    assert result["stored"] == sum(1 for item in sent if item.points) - (result["dead"] - expected_dead)
    assert result["stored"] > TOTAL // 4 and result["dead"] > TOTAL // 2, result   # the mix probes both paths
    # memory: flat after warm-up (the first tenth of the payloads published)
    warm = next(s for s in samples if s[1] >= TOTAL // 10)
    after = [s[2] for s in samples if s[0] >= warm[0]]
    timeline = " ".join(f"{t:.0f}s:{mb:.0f}" for t, _, mb in samples[::max(1, len(samples) // 12)])
    assert max(after) - warm[2] < RSS_GROWTH_LIMIT_MB, f"ingest RSS grew from {warm[2]:.1f} to {max(after):.1f} MB " \
        f"after warm-up (seconds:MB {timeline}) {seed_note}"
