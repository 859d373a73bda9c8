"""Telemetry envelopes -> InfluxDB line protocol. Pure functions, no I/O.

InfluxDB schema (fixed; the API, the board and Grafana read it like this):

* database ``hinode`` (``influx.database``), default retention policy unless
  ``influx.retention_policy`` is set.
* measurement = ``envelope.kind``: ``meter``, ``charger``, ``vitals``, ``vehicle``, ``agent``.
* tags: ``site``, ``agent``, ``device``, ``profile`` (an empty profile is omitted, as line
  protocol has no empty tag values), plus the ``meta`` keys the envelope's kind declares
  (``hinode.contract.META_KEYS``; the ingest drops and counts any other key before encoding).
  Nothing else is a tag: cardinality stays bounded.
* fields: one per metric, the metric name as the field key.

  - int and float values are written as FLOAT (``42`` -> ``42.0``), so a field never
    changes type when a device sends ``230`` once and ``230.4`` next time;
  - bool -> boolean, str -> string, None -> not written;
  - NaN and +/-infinity cannot be stored: not written, listed in ``bad_metrics``;
  - quality ``bad``: not written, listed in the string field ``bad_metrics``
    (comma-separated, sorted);
  - quality ``uncertain``: written, and listed in the string field ``uncertain_metrics``;
  - ``seq``: integer field (``seq=42i``) on every point of the envelope, so the API can
    count ``count(distinct(seq))`` per device for completeness;
  - metric names that would collide with the schema's own keys (``RESERVED_KEYS``) are
    not written and are listed in ``bad_metrics`` (counted as ``reserved_metric``).

* one line per (device, ts): the readings of one envelope are grouped by ``ts``;
  timestamps are milliseconds, written with ``/write?precision=ms``.
* Writes are idempotent: a duplicate envelope produces identical points (same series,
  same timestamp, same field values), which overwrite themselves.

Example::

    meter,agent=edge-1,device=pm-1,profile=hinode-sim-meter,site=plant-a power_w=1520.5,seq=42i 1700000000000
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hinode.contract import Quality, TelemetryEnvelope

TAG_KEYS = ("agent", "device", "profile", "site")  # sorted: InfluxDB indexes sorted tag sets fastest
SEQ_FIELD = "seq"
BAD_FIELD = "bad_metrics"
UNCERTAIN_FIELD = "uncertain_metrics"
# A metric with one of these names would clash with a tag, a schema field or InfluxDB's time column.
RESERVED_KEYS = frozenset({*TAG_KEYS, SEQ_FIELD, BAD_FIELD, UNCERTAIN_FIELD, "time", "_measurement", "_field"})

# Tag keys/values, field keys and measurements cannot carry a backslash portably: InfluxDB 1.x
# keeps an escaped double backslash as two characters, 2.x/3.x unescape it, and a trailing one
# breaks the line. Ids and metric names never contain one; a free-form profile gets "/" instead.
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\\": "/", "\n": r"\n", "\r": r"\r"})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "/", "\n": r"\n", "\r": r"\r"})
_STRING_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\\\n", "\r": "\\\\r"})
_NEEDS_KEY_ESCAPE = frozenset(",= \\\n\r")


def escape_measurement(name: str) -> str:
    """Commas and spaces are escaped; see the note above about backslashes and newlines."""
    return name.translate(_MEASUREMENT_ESCAPES)


def escape_key(text: str) -> str:
    """Tag keys, tag values and field keys: commas, equals signs and spaces are escaped.

    Line protocol allows no newline here: it becomes the two characters ``\\n``.
    A backslash becomes ``/`` (see above).
    """
    if _NEEDS_KEY_ESCAPE.isdisjoint(text):
        return text
    return text.translate(_KEY_ESCAPES)


def format_string(value: str) -> str:
    """A string field value: quoted, with double quotes and backslashes escaped.

    Line protocol cannot carry a newline inside a value, so newlines are stored as the
    two characters ``\\n`` (and ``\\r`` likewise).
    """
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def format_number(value: int | float) -> str | None:
    """Every number as a float field (no ``i`` suffix); None when it cannot be stored."""
    try:
        number = float(value)
    except OverflowError:
        return None
    if not math.isfinite(number):
        return None
    return repr(number)


@dataclass(slots=True)
class EncodedEnvelope:
    """The lines of one envelope plus what the ingest counts about them."""

    lines: list[str]
    timestamps: list[int]                 # ts of each line, same order (for ingest lag)
    readings_written: int = 0
    bad_quality: int = 0                  # quality == bad
    uncertain_quality: int = 0
    not_storable: int = 0                 # NaN / infinity / out of float range
    reserved_metric: int = 0              # metric name collides with a schema key
    skipped_none: int = 0
    problems: list[str] = field(default_factory=list)   # human-readable, for logs


_PREFIX_CACHE: dict[tuple, str] = {}     # (kind, site, agent, device, profile) -> "meter,agent=..,... "
_FIELD_KEY_CACHE: dict[str, str] = {}    # metric -> escaped field key
_CACHE_LIMIT = 50_000                    # entries; a cache this full is simply cleared
_BAD = Quality.BAD
_UNCERTAIN = Quality.UNCERTAIN


def _tag_set(envelope: TelemetryEnvelope, meta: dict[str, str] | None) -> str:
    values = {"agent": envelope.agent, "device": envelope.device,
              "profile": envelope.profile, "site": envelope.site}
    if meta:
        values.update(meta)
    return "".join(f",{key}={escape_key(values[key])}" for key in sorted(values) if values[key])


def _line_prefix(envelope: TelemetryEnvelope, meta: dict[str, str] | None) -> str:
    key = (envelope.kind, envelope.site, envelope.agent, envelope.device, envelope.profile,
           tuple(sorted(meta.items())) if meta else ())
    prefix = _PREFIX_CACHE.get(key)
    if prefix is None:
        if len(_PREFIX_CACHE) >= _CACHE_LIMIT:
            _PREFIX_CACHE.clear()
        prefix = _PREFIX_CACHE[key] = escape_measurement(str(envelope.kind)) + _tag_set(envelope, meta) + " "
    return prefix


def _field_key(metric: str) -> str:
    key = _FIELD_KEY_CACHE.get(metric)
    if key is None:
        if len(_FIELD_KEY_CACHE) >= _CACHE_LIMIT:
            _FIELD_KEY_CACHE.clear()
        key = _FIELD_KEY_CACHE[metric] = escape_key(metric)
    return key


def encode_envelope(envelope: TelemetryEnvelope, meta: dict[str, str] | None = None,
                    exclude: frozenset[str] = frozenset()) -> EncodedEnvelope:
    """Line protocol for one envelope, one line per distinct reading ``ts``.

    ``meta``: the tags to add (already checked against the kind's declared keys).
    ``exclude``: metrics to leave out and list in ``bad_metrics`` (a field InfluxDB refused
    for its type, so the rest of the envelope can be stored).

    This runs once per message on the ingest's hot path, hence the caches and the
    ``type(...) is`` checks; the behaviour is the one described in the module docstring.
    """
    prefix = _line_prefix(envelope, meta)
    seq_text = f"{SEQ_FIELD}={int(envelope.seq)}i"
    # ts -> (metric -> formatted value, bad metric names, uncertain metric names)
    groups: dict[int, tuple[dict[str, str], set[str], set[str]]] = {}
    out = EncodedEnvelope(lines=[], timestamps=[])
    last_ts = None
    for reading in envelope.readings:
        ts = reading.ts
        if ts != last_ts:
            group = groups.get(ts)
            if group is None:
                group = groups[ts] = ({}, set(), set())
            fields, bad, uncertain = group
            last_ts = ts
        metric = reading.metric
        quality = reading.quality
        if exclude and metric in exclude:
            bad.add(metric)
            fields.pop(metric, None)
            continue
        if metric in RESERVED_KEYS:
            out.reserved_metric += 1
            out.problems.append(f"metric name {metric!r} is reserved by the InfluxDB schema")
            bad.add(metric)
            continue
        if quality is _BAD:
            out.bad_quality += 1
            bad.add(metric)
            fields.pop(metric, None)
            uncertain.discard(metric)
            continue
        value = reading.value
        kind = type(value)
        if kind is float:
            text = repr(value) if value - value == 0.0 else None   # NaN and +/-inf give NaN
        elif kind is bool:
            text = "true" if value else "false"
        elif value is None:
            out.skipped_none += 1
            continue
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = format_number(value)
        else:
            text = format_string(str(value))
        if text is None:
            out.not_storable += 1
            out.problems.append(f"metric {metric!r} value {value!r} cannot be stored (not a finite float)")
            bad.add(metric)
            continue
        fields[metric] = text
        if quality is _UNCERTAIN:
            out.uncertain_quality += 1
            uncertain.add(metric)
        elif uncertain:
            uncertain.discard(metric)
    for ts, (fields, bad, uncertain) in groups.items():
        if bad:
            bad -= fields.keys()  # a later good reading of the same metric and ts wins
        parts = [f"{_field_key(metric)}={text}" for metric, text in fields.items()]
        out.readings_written += len(fields)
        parts.append(seq_text)
        if bad:
            parts.append(f"{BAD_FIELD}={format_string(','.join(sorted(bad)))}")
        if uncertain:
            parts.append(f"{UNCERTAIN_FIELD}={format_string(','.join(sorted(uncertain)))}")
        out.lines.append(f"{prefix}{','.join(parts)} {int(ts)}")
        out.timestamps.append(int(ts))
    return out


def envelope_to_lines(envelope: TelemetryEnvelope) -> list[str]:
    """Line protocol for one envelope (no trailing newlines); see the module docstring."""
    return encode_envelope(envelope).lines
