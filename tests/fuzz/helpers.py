"""Hypothesis strategies for the wire contract and seeded payload mutators for the ingest flood."""

from __future__ import annotations

import json
import math
import random

from hypothesis import strategies as st

from hinode import contract
from hinode.contract import ID_PATTERN, METRIC_PATTERN, PERSONAL_KINDS, DeviceKind, Quality

ids = st.from_regex(ID_PATTERN, fullmatch=True)
metrics = st.from_regex(METRIC_PATTERN, fullmatch=True)
# Values that survive JSON unchanged: NaN/inf are checked separately (JSON has no spelling for them).
values = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))

readings = st.fixed_dictionaries({
    "ts": st.integers(min_value=0, max_value=contract.MAX_TS_MS),
    "metric": metrics,
    "value": values,
    "unit": st.text(max_size=32),
    "quality": st.sampled_from([q.value for q in Quality]),
})

envelopes = st.fixed_dictionaries({
    "v": st.just(1),
    "site": ids, "agent": ids, "device": ids,
    "kind": st.sampled_from([k.value for k in DeviceKind]),
    "profile": st.text(max_size=128),
    "seq": st.integers(min_value=1, max_value=2**63),
    "readings": st.lists(readings, min_size=1, max_size=8),
    "meta": st.dictionaries(ids, st.text(max_size=128), max_size=4),
})

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)


# ---------------------------------------------------------------- seeded mutators (ingest flood)

WEIRD_VALUES = [None, True, 0, -1, 2**64, -(2**63) - 1, 1e308, -1e308, "", "x" * 300,
                "日本語", "\u0000", [], {}, [1, 2], {"a": 1}, 1.5, "NaN", float("nan"), float("inf")]
UNICODE_BITS = ["é", "日本", "\u202e", "\u0000", "🙂", "\n", "\\", '"', ",", "=", " "]


def dumps(data) -> bytes:
    """JSON as an edge agent would not write it: NaN/inf allowed, unicode unescaped."""
    return json.dumps(data, ensure_ascii=False, allow_nan=True).encode("utf-8", errors="surrogatepass")


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, index))


def _set(data, path, value):
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def mutate_structure(rng: random.Random, envelope: dict) -> dict:
    """A deep copy of ``envelope`` with one structural mutation (type, number, key, unicode)."""
    data = json.loads(json.dumps(envelope))
    paths = [p for p in _paths(data) if p]
    path = rng.choice(paths)
    kind = rng.randrange(6)
    if kind == 0:                                   # wrong type / weird value
        _set(data, path, rng.choice(WEIRD_VALUES))
    elif kind == 1:                                 # huge or negative number
        _set(data, path, rng.choice([2**63, 2**64 + 1, -5, 10**30, 1e300, -0.0, 9.3e15]))
    elif kind == 2:                                 # missing key
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, list) and parent:
            parent.pop()
    elif kind == 3:                                 # extra key
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict):
            parent[rng.choice(["extra", "v2", "Site", "", "日本"])] = rng.choice(WEIRD_VALUES[:8])
        else:
            data["extra"] = 1
    elif kind == 4:                                 # unicode in a string
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        current = parent[path[-1]]
        text = current if isinstance(current, str) else str(current)
        cut = rng.randrange(len(text) + 1)
        parent[path[-1]] = text[:cut] + rng.choice(UNICODE_BITS) + text[cut:]
    else:                                           # a nested list where a scalar was
        _set(data, path, [[[rng.random()]]])
    return data


def mutate_bytes(rng: random.Random, payload: bytes) -> bytes:
    """Bit flips, truncation, splices or garbage around a valid payload."""
    kind = rng.randrange(5)
    data = bytearray(payload)
    if kind == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del data[rng.randrange(len(data)):]
    elif kind == 2:
        i = rng.randrange(len(data))
        data[i:i] = rng.randbytes(rng.randint(1, 16))
    elif kind == 3:
        data = bytearray(rng.randbytes(rng.randint(0, 200)))
    else:
        i, j = sorted(rng.randrange(len(data)) for _ in range(2))
        data[i:j] = b""
    return bytes(data)


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- the ingest flood's payloads

# The flood goes to the general telemetry topic, where a personal kind is refused (it has its own).
KINDS = [k.value for k in DeviceKind if k not in PERSONAL_KINDS]
# One JSON type per metric name, as real devices send: a field never changes type in InfluxDB
# unless a mutation makes it (then the ingest must dead-letter what InfluxDB refuses).
TYPED_METRICS = [("power_w", lambda r: round(r.uniform(-5e4, 5e4), 3)), ("energy_wh", lambda r: r.uniform(0, 1e9)),
                 ("count", lambda r: r.randrange(10**6)), ("state", lambda r: r.choice(["run", "idle", "fault", "日本"])),
                 ("door_open", lambda r: r.random() < 0.5), ("temp_c", lambda r: None if r.random() < 0.1 else r.gauss(20, 5))]
METRIC_CATEGORY = {"power_w": "n", "energy_wh": "n", "count": "n", "temp_c": "n", "state": "s", "door_open": "b"}


def base_envelope(rng: random.Random, ts: int) -> dict:
    readings = []
    for metric, make in rng.sample(TYPED_METRICS, rng.randint(1, 5)):
        readings.append({"ts": ts, "metric": metric, "value": make(rng), "unit": rng.choice(["", "W", "Wh", "°C"]),
                         "quality": rng.choices(["good", "uncertain", "bad"], [8, 1, 1])[0]})
    return {"v": 1, "site": rng.choice(["plant-a", "plant-b"]), "agent": rng.choice(["edge-1", "edge-2"]),
            "device": f"dev-{rng.randrange(40):02d}", "kind": rng.choice(KINDS),
            "profile": rng.choice(["", "hinode-sim-meter", "acme pm7, rev=2", "trailing\\", "日本-メーター"]),
            "seq": rng.randint(1, 10**6), "readings": readings,
            "meta": rng.choice([{}, {"consent": "c-17"}, {"fleet": "f.2"}])}


def _category(value) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, (int, float)):
        return "n"
    return "s" if isinstance(value, str) else None


def keep_field_types(envelope: dict) -> dict:
    """After a mutation put e.g. a string where a number was, rename the metric (``power_w_s``)
    so each InfluxDB field keeps one type: most mutations should probe the contract, and only
    a few (left unrenamed by the caller) the ingest's isolation of what InfluxDB refuses."""
    readings = envelope.get("readings")
    for reading in readings if isinstance(readings, list) else []:
        if isinstance(reading, dict) and isinstance(reading.get("metric"), str) and reading["metric"] in METRIC_CATEGORY:
            category = _category(reading.get("value"))
            if category and category != METRIC_CATEGORY[reading["metric"]]:
                reading["metric"] += "_" + category
    return envelope


def flood_payload(rng: random.Random, ts: int) -> tuple[str, str, bytes]:
    """(category, topic, payload): mostly near-valid, seeded, cheap to make."""
    envelope = base_envelope(rng, ts)
    topic = contract.telemetry_topic(envelope["site"], envelope["agent"])
    roll = rng.random()
    if roll < 0.30:
        return "valid", topic, dumps(envelope)
    if roll < 0.60:
        mutated = mutate_structure(rng, envelope)
        if rng.random() < 0.97:
            mutated = keep_field_types(mutated)
        return "structure", topic, dumps(mutated)
    if roll < 0.85:
        return "bytes", topic, mutate_bytes(rng, dumps(envelope))
    if roll < 0.93:
        other = rng.choice(["plant-x/edge-1", "plant-a/edge-9", "日本/edge-1", "/edge-1", "plant-a/ ",
                            f"{envelope['site']}/{envelope['agent']}x"])
        # ids the contract's helpers refuse, on purpose: the topic is built from its parts
        return "topic", f"{contract.TOPIC_ROOT}/{other}/{contract.TELEMETRY_CHANNEL}", dumps(envelope)
    return "garbage", topic, rng.choice([b"", b"null", b"[]", b"{}", b'"x"', b"1e999", b'{"v":1}', b'{"v":2}',
                                         b'{"v":1,"readings":' + b"[" * 50 + b"]" * 50 + b"}",
                                         rng.randbytes(rng.randint(1, 64))])


def rare_payload(kind: str, rng: random.Random, ts: int) -> tuple[str, bytes]:
    """(topic, payload) of a poison payload: each costs the ingest a one-by-one rewrite of its
    whole batch today (tests/fuzz/test_ingest_poison.py), so a run holds only a few."""
    envelope = base_envelope(rng, ts)
    topic = contract.telemetry_topic(envelope["site"], envelope["agent"])
    if kind == "nested":
        return topic, b'{"v":1,"readings":' + b"[" * 5000 + b"]" * 5000 + b"}"
    if kind == "surrogate":         # a legal JSON escape, a lone UTF-16 surrogate: not encodable as UTF-8
        envelope["readings"] = [r for r in envelope["readings"] if r["metric"] != "state"]
        envelope["readings"].append({"ts": ts, "metric": "state", "value": "run\ud800", "unit": "", "quality": "good"})
        return topic, json.dumps(envelope).encode()       # ensure_ascii spells it \ud800
    return topic, b'{"v":1,"pad":"' + b"x" * (256 * 1024) + b'"}'
