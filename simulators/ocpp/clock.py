"""The simulated clock every charger of a fleet shares: a start time and a speed-up.

``time_scale=60`` runs one simulated minute per real second. Message timestamps, meter
intervals, ramps and commuter times are simulated; heartbeats and reconnect delays are
real seconds, because they are about the network connection.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta, timezone

from simulators.ocpp.ev import LOCAL_TZ


class SimClock:
    """``model_offset`` shifts only what the commuter model sees (a demo at 21:00 shows the cars of
    11:00); message timestamps stay on the clock, so a live board reads them as fresh."""

    def __init__(self, start: datetime | None = None, time_scale: float = 1.0,
                 model_offset: timedelta = timedelta(0)):
        if time_scale <= 0:
            raise ValueError(f"time scale must be > 0, not {time_scale}")
        self.time_scale = float(time_scale)
        self.start = (start or datetime.now(timezone.utc)).astimezone(timezone.utc)
        self._mono0 = time.monotonic()
        self.model_offset = model_offset

    def now(self) -> datetime:
        """Simulated time, aware, UTC."""
        return self.start + timedelta(seconds=(time.monotonic() - self._mono0) * self.time_scale)

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self.time_scale

    def real_until(self, when: datetime) -> float:
        return (when - self.now()).total_seconds() / self.time_scale


def parse_start(text: str, today: date | None = None) -> datetime:
    """``HH:MM`` (today, local time) or ``YYYY-MM-DDTHH:MM`` (local time) as an aware datetime."""
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        hours, minutes = (int(part) for part in text.split(":"))
        if hours > 23 or minutes > 59:
            raise ValueError(f"--start: expected HH:MM, got {text!r}")
        day = today or datetime.now(LOCAL_TZ).date()
        return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=LOCAL_TZ)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--start: expected HH:MM or YYYY-MM-DDTHH:MM, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL_TZ)


def ocpp_time(when: datetime) -> str:
    """UTC with milliseconds and a Z, as chargers send it."""
    utc = when.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_ocpp_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
