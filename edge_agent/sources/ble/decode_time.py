"""Current Time (0x2A2B): the gateway sets a device's clock with it; the virtual devices read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from edge_agent.sources.ble.decode_common import Reader
from edge_agent.sources.ble.measurement import DecodeError

ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL_REFERENCE = 0x02
ADJUST_TIME_ZONE = 0x04
ADJUST_DST = 0x08


@dataclass(frozen=True)
class CurrentTime:
    time: datetime | None          # naive; None when the date is unknown (year, month or day 0)
    day_of_week: int               # 1 Monday .. 7 Sunday, 0 unknown
    fractions256: int
    adjust_reason: int


def encode_current_time(now: datetime, adjust_reason: int = ADJUST_MANUAL) -> bytes:
    """10 bytes: Date Time (7), day of week (1 = Monday), fractions of a second in 1/256, adjust reason.

    ``now`` is the time to set as the device shows it (naive local time of the device's zone, or an
    aware datetime already converted to that zone; its tzinfo is dropped).
    """
    if not 1582 <= now.year <= 9999:
        raise ValueError(f"year {now.year} cannot be sent (1582..9999)")
    return (now.year.to_bytes(2, "little")
            + bytes([now.month, now.day, now.hour, now.minute, now.second, now.isoweekday(),
                     now.microsecond * 256 // 1_000_000, adjust_reason & 0xFF]))


def decode_current_time(data: bytes) -> CurrentTime:
    r = Reader(data, "current time")
    time, bad = r.date_time("date time")
    if bad:
        raise DecodeError("bad_value", "current time: impossible date or time")
    day_of_week, fractions, reason = r.uint(1, "day of week"), r.uint(1, "fractions256"), r.uint(1, "adjust reason")
    if day_of_week > 7:
        raise DecodeError("bad_value", f"current time: day of week {day_of_week} (expected 0..7)")
    if time is not None:
        time = time.replace(microsecond=fractions * 1_000_000 // 256)
    return CurrentTime(time, day_of_week, fractions, reason)
