"""Building the OCPP 2.0.1 requests behind :class:`ChargerLink` calls: charging profiles and
id tokens.

Profiles follow evcc's pattern: one schedule with a single period starting at 0, ``Absolute``
from a minute ago (a station whose clock runs a little behind still applies it at once) or
``Relative``. Each (EVSE, purpose) has one fixed profile id, so a new limit replaces the last one
instead of piling up profiles (2.0.1 rejects a second profile with the same purpose and stack
level under another id).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from ocpp.v201.datatypes import (
    ChargingProfileType,
    ChargingSchedulePeriodType,
    ChargingScheduleType,
    IdTokenType,
)
from ocpp.v201.enums import ChargingProfileKindEnumType as Kind
from ocpp.v201.enums import ChargingProfilePurposeEnumType as Purpose
from ocpp.v201.enums import IdTokenEnumType

from edge_agent.sources.ocpp.model import NOMINAL_VOLTAGE_V, Limit, RateUnit

STACK_LEVEL = 1
DEFAULT_PHASES = 3          # what OCPP assumes when numberPhases is absent
_TX_DEFAULT_PROFILE_BASE = 1000
_TX_PROFILE_BASE = 2000

# ISO 14443 UIDs are 4, 7 or 10 bytes, written as hex
_ISO14443_UID = re.compile(r"(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})")


def profile_id(evse_id: int, tx_profile: bool) -> int:
    return (_TX_PROFILE_BASE if tx_profile else _TX_DEFAULT_PROFILE_BASE) + evse_id


def in_supported_unit(limit: Limit, supported: tuple[RateUnit, ...]) -> tuple[float, RateUnit]:
    """The limit in a unit the station accepts, converted at the nominal voltage when the
    requested one is not (amps truncated to 0.1 A, watts to whole W, as evcc does)."""
    unit, value = limit.unit, limit.value
    if unit not in supported and supported:
        phases = limit.phases or DEFAULT_PHASES
        if unit is RateUnit.WATTS:
            unit, value = RateUnit.AMPS, value / (NOMINAL_VOLTAGE_V * phases)
        else:
            unit, value = RateUnit.WATTS, value * NOMINAL_VOLTAGE_V * phases
    if unit is RateUnit.AMPS:
        return math.floor(value * 10 + 1e-9) / 10, unit
    return float(math.floor(value + 1e-9)), unit


def charging_profile(evse_id: int, limit: Limit, supported: tuple[RateUnit, ...],
                     transaction_id: str | None, kind: Kind, now: datetime | None = None) -> ChargingProfileType:
    """A TxDefaultProfile, or a TxProfile for ``transaction_id`` when one is given."""
    value, unit = in_supported_unit(limit, supported)
    tx_profile = transaction_id is not None
    start = None
    if kind == Kind.absolute:
        start_at = (now or datetime.now(timezone.utc)) - timedelta(minutes=1)
        start = start_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ChargingProfileType(
        id=profile_id(evse_id, tx_profile),
        stack_level=STACK_LEVEL,
        charging_profile_purpose=Purpose.tx_profile if tx_profile else Purpose.tx_default_profile,
        charging_profile_kind=kind,
        transaction_id=transaction_id,
        charging_schedule=[ChargingScheduleType(
            id=profile_id(evse_id, tx_profile),
            charging_rate_unit=unit.value,
            start_schedule=start,
            charging_schedule_period=[ChargingSchedulePeriodType(
                start_period=0, limit=value, number_phases=limit.phases)],
        )],
    )


def id_token(id_tag: str) -> IdTokenType:
    """An RFID card's UID is an ISO14443 token; anything else is the CSMS's own (Central)."""
    token_type = IdTokenEnumType.iso14443 if _ISO14443_UID.fullmatch(id_tag) else IdTokenEnumType.central
    return IdTokenType(id_token=id_tag, type=token_type)


def composite_schedule_dict(status: str, schedule: dict | None) -> dict:
    """GetCompositeSchedule's answer in a version-neutral shape: status, start, duration,
    rate_unit and periods [{start_period, limit, number_phases}]; ``schedule`` is the answer as sent
    (snake_case keys)."""
    schedule = schedule or {}
    return {
        "status": status,
        "schedule": schedule,
        "start": schedule.get("schedule_start"),
        "duration": schedule.get("duration"),
        "rate_unit": schedule.get("charging_rate_unit"),
        "periods": [
            {"start_period": period["start_period"], "limit": float(period["limit"]),
             "number_phases": period.get("number_phases")}
            for period in schedule.get("charging_schedule_period") or ()
        ],
    }
